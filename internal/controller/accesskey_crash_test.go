package controller

import (
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/secret"
)

var _ = Describe("Crash safety", func() {
	It("leaks no key and loses no credential when record, Secret and status writes fail around the create", func() {
		namespace := newNamespace(nil)
		faults.set(namespace, 0.4)
		DeferCleanup(func() { faults.set("", 0) })

		var aks []*iamv1beta1.AccessKey
		for i := range 10 {
			for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
				aks = append(aks, newAccessKey(namespace, fmt.Sprintf("crash-%s-%d", lower(api), i), api, func(ak *iamv1beta1.AccessKey) {
					ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(time.Second)
				}))
			}
		}
		// Three rounds: the first key, then two replacements, each under faults.
		for round := range 3 {
			for i, ak := range aks {
				aks[i] = waitReadyWithin(ak, 2*time.Minute)
				if round < 2 {
					aks[i] = edit(aks[i], func(ak *iamv1beta1.AccessKey) {
						ak.Spec.Operations = append(ak.Spec.Operations, []string{"put-sos-object", "delete-sos-object"}[round])
					})
				}
			}
		}
		secretFailures, statusFailures, recordFailures := faults.counts()
		Expect(secretFailures).To(BeNumerically(">", 5), "faults must have hit Secret writes")
		Expect(statusFailures).To(BeNumerically(">", 5), "faults must have hit status writes")
		Expect(recordFailures).To(BeNumerically(">", 5), "faults must have hit pending-key records")
		AddReportEntry("injected failures", fmt.Sprintf("Secret writes %d, status writes %d, pending-key records %d",
			secretFailures, statusFailures, recordFailures))

		faults.set("", 0)
		for _, ak := range aks {
			// Every live key of the AccessKey is the one its Secret holds,
			// once retired keys have passed their grace period.
			Eventually(func() []string { return liveKeysOf(ak) }, time.Minute, poll).Should(ConsistOf(fetch(ak).Status.KeyID), ak.Name)
			s := secretOf(ak)
			Expect(s.Annotations[iamv1beta1.KeyIDAnnotation]).To(Equal(fetch(ak).Status.KeyID))
			Expect(allowed(s, "get-sos-object", "backups")).To(BeTrue(), "the published credential works")
			Expect(allowed(s, "delete-sos-object", "backups")).To(BeTrue(), "and holds the latest restrictions")
		}
	})
})

var _ = Describe("Recovering an interrupted create", func() {
	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		// The manager recorded a key name, created the key and stopped before
		// the Secret was written: the key's secret is lost, so it is revoked.
		It(fmt.Sprintf("revokes a key created and never published (%s)", api), func() {
			namespace := newNamespace(nil)
			ak := heldBack(namespace, "lost", api)
			lost := mintOutsideTheManager(api, fmt.Sprintf("k8s-%s-lost-0a0b0c0d0e0f", namespace), ak)
			recordPendingAsTheManager(ak, api, lost.Name, "")
			edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = issuerName(api) })

			got := waitReady(ak)
			Expect(got.Status.KeyID).NotTo(Equal(lost.ID))
			Expect(liveKeysOf(ak)).To(ConsistOf(got.Status.KeyID), "the unpublished key is revoked")
			Expect(authenticates(lost.ID, lost.Secret.Reveal())).To(BeFalse())
		})

		// The manager recorded a key name and stopped while Exoscale was
		// still making the key (an IAMv3 role operation running): the first
		// lookups find nothing, and the key appears later. The record is
		// kept, and nothing else minted, until it does; then it is revoked.
		It(fmt.Sprintf("keeps the record of a create still finishing at Exoscale, and revokes the key when it appears (%s)", api), func() {
			namespace := newNamespace(nil)
			ak := heldBack(namespace, "late", api)
			name := fmt.Sprintf("k8s-%s-late-0a0b0c0d0e0f", namespace)
			recordPendingAsTheManager(ak, api, name, "")
			edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = issuerName(api) })
			Consistently(func() iamv1beta1.PendingKey { return fetch(ak).Status.Pending }, 2*time.Second, poll).
				ShouldNot(BeZero(), "the record of a create that may still finish is kept")
			Expect(liveKeysOf(ak)).To(BeEmpty(), "nothing else is minted meanwhile")

			late := mintOutsideTheManager(api, name, ak)
			got := waitReady(ak)
			Expect(got.Status.KeyID).NotTo(Equal(late.ID))
			Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(ConsistOf(got.Status.KeyID),
				"the key that appeared late is revoked, not forgotten")
			Expect(authenticates(late.ID, late.Secret.Reveal())).To(BeFalse())
		})

		// The manager published the key and stopped before status recorded
		// it: the Secret is the key's durable home, so the key is adopted.
		It(fmt.Sprintf("adopts a key published and not yet recorded (%s)", api), func() {
			namespace := newNamespace(nil)
			ak := heldBack(namespace, "published", api)
			published := mintOutsideTheManager(api, fmt.Sprintf("k8s-%s-published-0d0e0f0a0b0c", namespace), ak)
			createSecretAsPublished(ak, published.Key, published.Secret.Reveal())
			withSpec := fetch(ak)
			withSpec.Spec.IssuerRef.Name = issuerName(api)
			recordPendingAsTheManager(ak, api, published.Name, restrictionHash(withSpec))
			edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = issuerName(api) })

			got := waitReady(ak)
			Expect(got.Status.KeyID).To(Equal(published.ID))
			Consistently(func() []string { return liveKeysOf(ak) }, 2*time.Second, poll).Should(ConsistOf(published.ID),
				"no second key is minted")
		})
	}
})

// createSecretAsPublished writes the AccessKey's Secret as exokey publishes
// a key: data, annotations, label and controller reference.
func createSecretAsPublished(ak *iamv1beta1.AccessKey, key exoscale.Key, secretValue string) {
	data := map[string][]byte{"EXOSCALE_API_KEY": []byte(key.ID), "EXOSCALE_API_SECRET": []byte(secretValue)}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ak.Name, Namespace: ak.Namespace,
			Labels: map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue},
			Annotations: map[string]string{
				iamv1beta1.KeyIDAnnotation: key.ID, iamv1beta1.KeyNameAnnotation: key.Name,
				iamv1beta1.ChecksumAnnotation: secret.Checksum(data), RoleIDAnnotation: key.RoleID,
			}},
		Data: data,
	}
	ExpectWithOffset(1, controllerutil.SetControllerReference(fetch(ak), s, scheme)).To(Succeed())
	ExpectWithOffset(1, k8sClient.Create(ctx, s)).To(Succeed())
}

// heldBack creates an AccessKey whose issuer does not exist, which keeps the
// manager from minting while a test sets the scene of an interruption.
func heldBack(namespace, name string, api iamv1beta1.IssuerAPI) *iamv1beta1.AccessKey {
	ak := newAccessKey(namespace, name, api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = "not-yet" })
	waitRefused(ak, ReasonIssuerNotFound)
	return fetch(ak)
}

// recordPendingAsTheManager writes what the manager writes before a create:
// the finalizer and the pending record in status, timed by its clock.
func recordPendingAsTheManager(ak *iamv1beta1.AccessKey, api iamv1beta1.IssuerAPI, keyName, restrictionHash string) {
	iss := &iamv1beta1.ClusterKeyIssuer{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Name: issuerName(api)}, iss)).To(Succeed())
	edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Finalizers = []string{iamv1beta1.RevokeFinalizer} })
	ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got := fetch(ak)
		got.Status.Pending = iamv1beta1.PendingKey{
			KeyName: keyName, StartedAt: ptr.To(metav1.NewTime(testClock.Now().UTC().Truncate(time.Second))), RestrictionHash: restrictionHash,
			Issuer: iamv1beta1.MintingIssuer{Kind: iamv1beta1.ClusterKeyIssuerKind, Name: iss.Name, UID: iss.UID, API: api},
		}
		return k8sClient.Status().Update(ctx, got)
	})).To(Succeed())
}

// mintOutsideTheManager creates a key as the manager would have before it
// stopped, for ak when given (its role labelled as the manager labels it).
func mintOutsideTheManager(api iamv1beta1.IssuerAPI, name string, ak ...*iamv1beta1.AccessKey) exoscale.Credential {
	spec := exoscale.KeySpec{Name: name, Operations: []string{"get-sos-object"}}
	if len(ak) > 0 {
		spec = (&AccessKeyReconciler{ClusterID: clusterID}).KeySpecOf(ak[0], name) // its rights and labels
	}
	cred, err := rootKeys[api].Create(ctx, spec)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, authenticates(cred.ID, cred.Secret.Reveal())).To(BeTrue())
	return cred
}

// pendingRecord is the intent record earlier versions kept in an
// annotation, which tenants can forge.
func pendingRecord(keyName, restrictionHash string) string {
	raw, err := json.Marshal(map[string]any{"keyName": keyName, "startedAt": time.Now().UTC().Truncate(time.Second), "restrictionHash": restrictionHash})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return string(raw)
}

// forgedPendingAnnotation is where earlier versions kept the intent record.
const forgedPendingAnnotation = "iam.exokey.io/pending-key"

func lower(api iamv1beta1.IssuerAPI) string {
	if api == iamv1beta1.IssuerAPIIAMv3 {
		return "v3"
	}
	return "v2"
}

func waitReadyWithin(ak *iamv1beta1.AccessKey, within time.Duration) *iamv1beta1.AccessKey {
	var got *iamv1beta1.AccessKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = &iamv1beta1.AccessKey{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got)).To(Succeed())
		ready := condition(got, ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(BeEquivalentTo("True"))
		g.Expect(ready.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Pending).To(BeZero())
		g.Expect(got.Status.RestrictionHash).To(Equal(restrictionHash(got)))
	}, within, poll).Should(Succeed())
	return got
}
