package controller

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
)

const (
	timeout = 30 * time.Second
	poll    = 100 * time.Millisecond
)

// issuerOfKey creates a ClusterKeyIssuer of an IAM v3 key made for it with
// the root key: one that mints and revokes keys for the sos service, and
// holds the extra operations besides.
func issuerOfKey(namespace, name string, extra ...string) *iamv1beta1.ClusterKeyIssuer {
	operations := append([]string{"create-iam-role", "create-api-key", "delete-api-key", "delete-iam-role", "get-api-key", "get-iam-role",
		"get-operation"}, extra...)
	minter, err := rootKeys[iamv1beta1.IssuerAPIIAMv3].Create(ctx, exoscale.KeySpec{Name: name + "-" + namespace, Tags: []string{"sos"},
		Operations: operations})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		StringData: map[string]string{"EXOSCALE_API_KEY": minter.ID, "EXOSCALE_API_SECRET": minter.Secret.Reveal()}})).To(Succeed())
	iss := clusterIssuer(name+"-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
	iss.Spec.CredentialsRef = iamv1beta1.CredentialsReference{Name: name, Namespace: namespace}
	ExpectWithOffset(1, k8sClient.Create(ctx, iss)).To(Succeed())
	return iss
}

func newNamespace(labels map[string]string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ak-", Labels: labels}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func newAccessKey(namespace, name string, api iamv1beta1.IssuerAPI, mutate ...func(*iamv1beta1.AccessKey)) *iamv1beta1.AccessKey {
	ak := &iamv1beta1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: iamv1beta1.AccessKeySpec{
			IssuerRef:  iamv1beta1.IssuerReference{Name: issuerName(api)},
			Operations: []string{"get-sos-object", "list-sos-bucket"},
			Resources:  []string{"sos/bucket:backups"},
			Rotation:   &iamv1beta1.RotationSpec{GracePeriodSeconds: iamv1beta1.SecondsOf(3 * time.Second)},
		},
	}
	for _, m := range mutate {
		m(ak)
	}
	Expect(k8sClient.Create(ctx, ak)).To(Succeed())
	return ak
}

// edit changes an AccessKey as a user would, retrying on conflicts with
// the controller's own writes, and returns the result.
func edit(ak *iamv1beta1.AccessKey, change func(*iamv1beta1.AccessKey)) *iamv1beta1.AccessKey {
	var got *iamv1beta1.AccessKey
	ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got = fetch(ak)
		change(got)
		return k8sClient.Update(ctx, got)
	})).To(Succeed())
	return got
}

func fetch(ak *iamv1beta1.AccessKey) *iamv1beta1.AccessKey {
	got := &iamv1beta1.AccessKey{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got)).To(Succeed())
	return got
}

func condition(ak *iamv1beta1.AccessKey, conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(ak.Status.Conditions, conditionType)
}

// waitReplaced waits until a key other than first is Ready and its Secret's
// credential works, and returns the AccessKey.
func waitReplaced(ak *iamv1beta1.AccessKey, first string) *iamv1beta1.AccessKey {
	EventuallyWithOffset(1, func() string { return fetch(ak).Status.KeyID }, timeout, poll).ShouldNot(Equal(first))
	ak = waitReady(ak)
	ExpectWithOffset(1, allowed(secretOf(ak), "get-sos-object", "backups")).To(BeTrue())
	return ak
}

// waitReady waits until the AccessKey is Ready for its current generation
// with no create pending, and returns it.
func waitReady(ak *iamv1beta1.AccessKey) *iamv1beta1.AccessKey {
	var got *iamv1beta1.AccessKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = fetch(ak)
		ready := condition(got, ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%s: %s", ready.Reason, ready.Message)
		g.Expect(ready.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Pending).To(BeZero())
	}, timeout, poll).Should(Succeed())
	return got
}

// waitRefused waits for Ready=False with reason and returns the message.
func waitRefused(ak *iamv1beta1.AccessKey, reason string) string {
	var message string
	EventuallyWithOffset(1, func(g Gomega) {
		ready := condition(fetch(ak), ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(reason), ready.Message)
		message = ready.Message
	}, timeout, poll).Should(Succeed())
	return message
}

func secretOf(ak *iamv1beta1.AccessKey) *corev1.Secret {
	s := &corev1.Secret{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ak.Namespace, Name: secretName(ak)}, s)).To(Succeed())
	return s
}

// allowed asks the emulator whether the credential in the AccessKey's
// Secret may call operation on bucket.
func allowed(s *corev1.Secret, operation, bucket string) bool {
	params := map[string]string{}
	if bucket != "" {
		params["bucket"] = bucket
	}
	ok, err := emulator.Authorize(ctx, endpoint, string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]), operation, params)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return ok
}

func authenticates(key, secret string) bool {
	_, err := emulator.Authorize(ctx, endpoint, key, secret, "list-zones", nil)
	return err == nil
}

// liveKeysOf lists the emulator's live keys minted for an AccessKey.
func liveKeysOf(ak *iamv1beta1.AccessKey) []string {
	prefix := fmt.Sprintf("k8s-%s-%s-", ak.Namespace, ak.Name)
	var ids []string
	for _, k := range emu.Keys() {
		if strings.HasPrefix(k.Name, prefix) {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

var _ = Describe("AccessKey", func() {
	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		Context("with an "+string(api)+" issuer", func() {
			var namespace string
			BeforeEach(func() { namespace = newNamespace(nil) })

			It("publishes a credential that can do exactly what it was given", func() {
				ak := waitReady(newAccessKey(namespace, "reader", api))
				s := secretOf(ak)
				Expect(s.Data).To(HaveKey("EXOSCALE_API_KEY"))
				Expect(s.Data).To(HaveKey("EXOSCALE_ZONE"))
				Expect(string(s.Data["EXOSCALE_API_KEY"])).To(Equal(ak.Status.KeyID))
				Expect(s.Labels).To(HaveKeyWithValue(iamv1beta1.ManagedByLabel, iamv1beta1.ManagedByValue))
				Expect(s.Annotations).To(HaveKeyWithValue(iamv1beta1.KeyIDAnnotation, ak.Status.KeyID))
				Expect(metav1.IsControlledBy(s, ak)).To(BeTrue())

				Expect(allowed(s, "get-sos-object", "backups")).To(BeTrue())
				Expect(allowed(s, "list-sos-bucket", "backups")).To(BeTrue())
				Expect(allowed(s, "get-sos-object", "other")).To(BeFalse())
				Expect(allowed(s, "put-sos-object", "backups")).To(BeFalse())
				Expect(allowed(s, "list-instances", "")).To(BeFalse())

				Expect(liveKeysOf(ak)).To(ConsistOf(ak.Status.KeyID))
				Expect(fmt.Sprintf("%v", ak.Status)).NotTo(ContainSubstring(string(s.Data["EXOSCALE_API_SECRET"])))

				// The create and the publish are one event, with the reason.
				Eventually(func() string { return eventsOf(ak, EventKeyPublished) }, timeout, poll).Should(Equal(
					fmt.Sprintf("Normal created key %s and published it in Secret %s: no key has been minted yet\n", ak.Status.KeyID, s.Name)))
				Consistently(func() string { return eventsOf(ak, "KeyCreated") }, "2s", poll).Should(BeEmpty())
			})

			It("mints nothing for a Secret its namespace's deletion removed, and revokes its key when the AccessKey goes", func() {
				ak := waitReady(newAccessKey(namespace, "leaving", api))
				key := ak.Status.KeyID
				// What the namespace controller does, in its order: the
				// namespace is Terminating, its Secrets go before the AccessKey.
				Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})).To(Succeed())
				Eventually(func() bool {
					ns := &corev1.Namespace{}
					return managerCache.Get(ctx, client.ObjectKey{Name: namespace}, ns) == nil && !ns.DeletionTimestamp.IsZero()
				}, timeout, poll).Should(BeTrue())
				Expect(k8sClient.Delete(ctx, secretOf(ak))).To(Succeed())
				// A key minted now could not be published: the namespace takes
				// no new Secret. Nothing is tried, so nothing fails.
				Consistently(func(g Gomega) {
					got := fetch(ak)
					g.Expect(got.Status.KeyID).To(Equal(key))
					g.Expect(got.Status.Pending).To(BeZero(), "a key is being minted for a namespace being deleted")
					g.Expect(condition(got, ConditionSynced).Status).To(Equal(metav1.ConditionTrue), condition(got, ConditionSynced).Message)
					g.Expect(liveKeysOf(ak)).To(ConsistOf(key))
				}, 2*driftCheckPeriod, poll).Should(Succeed())
				Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
				Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(BeEmpty())
				Eventually(func() bool {
					return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), &iamv1beta1.AccessKey{}))
				}, timeout, poll).Should(BeTrue())
			})

			It("replaces the key when the restrictions change, keeping the old one for the grace period", func() {
				ak := waitReady(newAccessKey(namespace, "editor", api))
				old := secretOf(ak)
				oldKey, oldSecret := string(old.Data["EXOSCALE_API_KEY"]), string(old.Data["EXOSCALE_API_SECRET"])

				ak = waitReady(edit(ak, func(ak *iamv1beta1.AccessKey) {
					ak.Spec.Operations = append(ak.Spec.Operations, "put-sos-object")
				}))
				Expect(ak.Status.KeyID).NotTo(Equal(oldKey))
				Expect(ak.Status.Retiring).To(HaveLen(1))
				Expect(ak.Status.Retiring[0].KeyID).To(Equal(oldKey))
				Expect(allowed(secretOf(ak), "put-sos-object", "backups")).To(BeTrue())
				Expect(authenticates(oldKey, oldSecret)).To(BeTrue(), "the old key works during the grace period")

				Eventually(func() bool { return authenticates(oldKey, oldSecret) }, timeout, poll).Should(BeFalse())
				Eventually(func() []iamv1beta1.RetiringKey { return fetch(ak).Status.Retiring }, timeout, poll).Should(BeEmpty())
				Expect(liveKeysOf(ak)).To(ConsistOf(ak.Status.KeyID))
			})

			It("heals a key revoked behind its back", func() {
				ak := waitReady(newAccessKey(namespace, "revoked", api))
				first := ak.Status.KeyID
				Expect(rootKeys[api].Revoke(ctx, exoscale.Key{ID: first, RoleID: ak.Status.RoleID})).To(Succeed())
				ak = waitReplaced(ak, first)
				Expect(ak.Status.Retiring).To(BeEmpty(), "a key already gone does not retire")
				Expect(liveKeysOf(ak)).To(ConsistOf(ak.Status.KeyID))
			})

			It("heals a deleted Secret and revokes the stale key", func() {
				ak := waitReady(newAccessKey(namespace, "lost", api))
				first := ak.Status.KeyID
				Expect(k8sClient.Delete(ctx, secretOf(ak))).To(Succeed())
				ak = waitReplaced(ak, first)
				Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(ConsistOf(ak.Status.KeyID))
			})

			It("heals tampered Secret data", func() {
				ak := waitReady(newAccessKey(namespace, "tampered", api))
				first := ak.Status.KeyID
				Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
					s := secretOf(ak)
					s.Data["EXOSCALE_API_SECRET"] = []byte("not the secret")
					return k8sClient.Update(ctx, s)
				})).To(Succeed())
				ak = waitReplaced(ak, first)
				Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(ConsistOf(ak.Status.KeyID))
			})

			It("revokes every key on delete", func() {
				ak := waitReady(newAccessKey(namespace, "deleted", api))
				ak = waitReady(edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-object"} }))
				Expect(liveKeysOf(ak)).To(HaveLen(2), "current and retiring")
				var roles []string
				if api == iamv1beta1.IssuerAPIIAMv3 {
					roles = rolesOf(ak)
					Expect(roles).To(HaveLen(2), "a role for each key")
				}
				Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
				Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(BeEmpty())
				Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), ak) }, timeout, poll).Should(Satisfy(isNotFound))
				for _, role := range emu.Roles() {
					Expect(roles).NotTo(ContainElement(role.ID), "roles go with their keys")
				}
			})

			It("keeps the key and the Secret with deletionPolicy Orphan", func() {
				orphans := clusterIssuer("orphans-"+namespace, api, nil)
				orphans.Spec.AllowedDeletionPolicies = []iamv1beta1.DeletionPolicy{iamv1beta1.DeletionPolicyOrphan}
				Expect(k8sClient.Create(ctx, orphans)).To(Succeed())
				ak := waitReady(newAccessKey(namespace, "orphan", api, func(ak *iamv1beta1.AccessKey) {
					ak.Spec.IssuerRef.Name = orphans.Name
					ak.Spec.DeletionPolicy = iamv1beta1.DeletionPolicyOrphan
				}))
				Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
				Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), ak) }, timeout, poll).Should(Satisfy(isNotFound))
				s := secretOf(ak)
				Expect(metav1.GetControllerOf(s)).To(BeNil())
				Expect(allowed(s, "get-sos-object", "backups")).To(BeTrue())
				Expect(rootKeys[api].Revoke(ctx, exoscale.Key{ID: string(s.Data["EXOSCALE_API_KEY"]), RoleID: s.Annotations[RoleIDAnnotation]})).To(Succeed())
			})
		})
	}
})

// countRoles counts the emulator's roles that still have a key; a role
// without a key would be a leak.
var _ = Describe("AccessKey refusals", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })
	api := iamv1beta1.IssuerAPIIAMv3

	expectNoKey := func(ak *iamv1beta1.AccessKey) {
		Consistently(func() []string { return liveKeysOf(ak) }, time.Second, poll).Should(BeEmpty())
		Expect(fetch(ak).Status.KeyID).To(BeEmpty())
	}

	It("refuses a namespace the ClusterKeyIssuer does not select", func() {
		Expect(k8sClient.Create(ctx, clusterIssuer("team-only", api, &metav1.LabelSelector{
			MatchLabels: map[string]string{"team": "a"}}))).To(Succeed())
		ak := newAccessKey(namespace, "unselected", api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = "team-only" })
		Expect(waitRefused(ak, ReasonNotPermitted)).To(ContainSubstring("does not serve namespace " + namespace))
		expectNoKey(ak)

		// Labelling the namespace lets it in.
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: namespace}, ns)).To(Succeed())
		ns.Labels["team"] = "a"
		Expect(k8sClient.Update(ctx, ns)).To(Succeed())
		waitReady(ak)
	})

	It("refuses what is beyond the issuer's ceiling", func() {
		narrow := clusterIssuer("narrow", api, nil)
		narrow.Spec.Allowed = iamv1beta1.Allowed{Operations: []string{"get-sos-*"}, Resources: []string{"sos/bucket:team-a-*"}}
		Expect(k8sClient.Create(ctx, narrow)).To(Succeed())
		for name, mutate := range map[string]func(*iamv1beta1.AccessKey){
			"operation": func(ak *iamv1beta1.AccessKey) {},
			"bucket": func(ak *iamv1beta1.AccessKey) {
				ak.Spec.Operations = []string{"get-sos-object"}
			},
			"unrestricted": func(ak *iamv1beta1.AccessKey) {
				ak.Spec.Operations, ak.Spec.Resources, ak.Spec.Access = nil, nil, iamv1beta1.AccessUnrestricted
			},
		} {
			ak := newAccessKey(namespace, "beyond-"+name, api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = "narrow" }, mutate)
			Expect(waitRefused(ak, ReasonNotPermitted)).To(ContainSubstring(`ClusterKeyIssuer "narrow" does not allow this`))
			expectNoKey(ak)
		}
		within := newAccessKey(namespace, "within", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.IssuerRef.Name = "narrow"
			ak.Spec.Operations, ak.Spec.Resources = []string{"get-sos-object"}, []string{"sos/bucket:team-a-logs"}
		})
		waitReady(within)
	})

	It("refuses an unknown operation, naming the nearest one", func() {
		ak := newAccessKey(namespace, "typo", api, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-objekt"} })
		Expect(waitRefused(ak, ReasonUnknownOperation)).To(ContainSubstring(`did you mean "get-sos-object"?`))
		expectNoKey(ak)
		events := &corev1.EventList{}
		Eventually(func() string {
			Expect(k8sClient.List(ctx, events, client.InNamespace(namespace))).To(Succeed())
			var reasons []string
			for _, e := range events.Items {
				reasons = append(reasons, e.Reason)
			}
			return strings.Join(reasons, ",")
		}, timeout, poll).Should(ContainSubstring(ReasonUnknownOperation))
	})

	It("refuses while the issuer has no credentials, and recovers when they come", func() {
		broken := clusterIssuer("broken", api, nil)
		broken.Spec.CredentialsRef = iamv1beta1.CredentialsReference{Name: "later", Namespace: namespace}
		Expect(k8sClient.Create(ctx, broken)).To(Succeed())
		ak := newAccessKey(namespace, "waiting", api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = "broken" })
		Expect(waitRefused(ak, ReasonIssuerNotReady)).To(ContainSubstring("credentials Secret " + namespace + "/later not found"))
		Eventually(func() string {
			got := &iamv1beta1.ClusterKeyIssuer{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "broken"}, got)).To(Succeed())
			if c := meta.FindStatusCondition(got.Status.Conditions, ConditionReady); c != nil {
				return c.Reason
			}
			return ""
		}, timeout, poll).Should(Equal(ReasonCredentialsMissing))
		expectNoKey(ak)

		rootKey, rootSecret := emu.Root()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: namespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret}})).To(Succeed())
		// The issuer notices its Secret and turns Ready, which retries the AccessKey.
		waitReady(ak)
	})

	It("never overwrites a Secret it does not control", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: namespace},
			StringData: map[string]string{"precious": "data"}})).To(Succeed())
		ak := newAccessKey(namespace, "taken", api)
		Expect(waitRefused(ak, ReasonSecretConflict)).To(ContainSubstring("Secret taken exists and is not controlled by this AccessKey"))
		expectNoKey(ak)
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "taken"}, s)).To(Succeed())
		Expect(s.Data).To(Equal(map[string][]byte{"precious": []byte("data")}))
	})
})

var _ = Describe("Issuers", func() {
	issuerReason := func(name string) func() string {
		return func() string {
			got := &iamv1beta1.ClusterKeyIssuer{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, got)).To(Succeed())
			if c := meta.FindStatusCondition(got.Status.Conditions, ConditionReady); c != nil {
				return c.Reason
			}
			return ""
		}
	}

	It("follow their credentials Secret", func() {
		namespace := newNamespace(nil)
		rootKey, rootSecret := emu.Root()
		parent := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "parent", Namespace: namespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret}}
		Expect(k8sClient.Create(ctx, parent)).To(Succeed())
		iss := clusterIssuer("follows-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
		iss.Spec.CredentialsRef = iamv1beta1.CredentialsReference{Name: "parent", Namespace: namespace}
		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		Eventually(issuerReason(iss.Name), timeout, poll).Should(Equal(ReasonIssuerReady))

		// The parent key is replaced by one that may read SOS and nothing else.
		weak, err := rootKeys[iamv1beta1.IssuerAPIIAMv3].Create(ctx, exoscale.KeySpec{Name: "weak-parent", Operations: []string{"get-sos-object"}})
		Expect(err).NotTo(HaveOccurred())
		// exokey's finalizer on the Secret moves its resourceVersion: update
		// on the latest, as kubectl apply does.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(parent), parent)).To(Succeed())
			parent.StringData = map[string]string{"EXOSCALE_API_KEY": weak.ID, "EXOSCALE_API_SECRET": weak.Secret.Reveal()}
			return k8sClient.Update(ctx, parent)
		})).To(Succeed())
		Eventually(issuerReason(iss.Name), timeout, poll).Should(Equal(ReasonCredentialsInvalid))

		// Deleted while its issuer lives on (to be replaced): let go at once.
		Expect(k8sClient.Delete(ctx, parent)).To(Succeed())
		Eventually(issuerReason(iss.Name), timeout, poll).Should(Equal(ReasonCredentialsMissing))
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(parent), parent) }, timeout, poll).
			Should(Satisfy(apierrors.IsNotFound), "the Secret is gone, free to be created again")
	})

	It("keep the credentials Secret of a deleted issuer until the keys minted with it are revoked, with nothing held in memory", func() {
		namespace := newNamespace(nil)
		rootKey, rootSecret := emu.Root()
		parent := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "parent", Namespace: namespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret}}
		Expect(k8sClient.Create(ctx, parent)).To(Succeed())
		iss := clusterIssuer("holds-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
		iss.Spec.CredentialsRef = iamv1beta1.CredentialsReference{Name: "parent", Namespace: namespace}
		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		Eventually(issuerReason(iss.Name), timeout, poll).Should(Equal(ReasonIssuerReady))
		Eventually(func() []string {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(parent), parent)).To(Succeed())
			return parent.Finalizers
		}, timeout, poll).Should(ContainElement(iamv1beta1.CredentialsFinalizer))
		ak := waitReady(newAccessKey(namespace, "held", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.IssuerRef.Name = iss.Name
		}))

		By("deleting the issuer and its Secret together, and forgetting the credentials this process read")
		Expect(k8sClient.Delete(ctx, iss)).To(Succeed())
		Expect(k8sClient.Delete(ctx, parent)).To(Succeed())
		Eventually(issuerReason(iss.Name), timeout, poll).Should(Equal(ReasonInUse))
		testIssuers.forget(clusterKeyIssuer(iss))
		Consistently(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(parent), parent) }, time.Second, poll).
			Should(Succeed(), "the Secret is kept while its keys live")
		Expect(parent.DeletionTimestamp.IsZero()).To(BeFalse())

		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(BeEmpty(), "revoked with the kept Secret's credentials")
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(parent), parent) }, timeout, poll).
			Should(Satisfy(apierrors.IsNotFound), "let go once the keys are revoked")
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), iss) }, timeout, poll).
			Should(Satisfy(apierrors.IsNotFound))
	})

	It("say when their key cannot hand out session credentials, and such AccessKeys are refused without leaving a role", func() {
		namespace := newNamespace(nil)
		// A key that mints and revokes IAM v3 keys, but may not assume roles.
		iss := issuerOfKey(namespace, "no-assume", "list-iam-roles", "list-api-keys")
		Eventually(func(g Gomega) {
			got := &iamv1beta1.ClusterKeyIssuer{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: iss.Name}, got)).To(Succeed())
			ready := meta.FindStatusCondition(got.Status.Conditions, ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "permanent keys are still minted")
			g.Expect(ready.Message).To(ContainSubstring("it lacks assume-iam-role, so it cannot hand out session credentials (spec.ttlSeconds)"))
		}, timeout, poll).Should(Succeed())

		ak := newAccessKey(namespace, "short", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.IssuerRef.Name = iss.Name
			ak.Spec.TTLSeconds = iamv1beta1.SecondsOf(time.Hour)
		})
		Expect(waitRefused(ak, ReasonNotPermitted)).To(ContainSubstring(
			fmt.Sprintf("ClusterKeyIssuer %q cannot hand out session credentials: its key lacks assume-iam-role", iss.Name)))
		Consistently(func() []string { return rolesOf(ak) }, 2*time.Second, poll).Should(BeEmpty(), "no role is made for it")
	})

	It("report Ready and what their key can grant", func() {
		for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
			Eventually(func(g Gomega) {
				got := &iamv1beta1.ClusterKeyIssuer{}
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: issuerName(api)}, got)).To(Succeed())
				ready := meta.FindStatusCondition(got.Status.Conditions, ConditionReady)
				g.Expect(ready).NotTo(BeNil())
				g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
				g.Expect(got.Status.Grantable).To(HaveValue(BeNumerically(">", 400)))
			}, timeout, poll).Should(Succeed())
		}
	})
})
