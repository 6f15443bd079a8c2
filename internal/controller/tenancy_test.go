package controller

import (
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/inject"
	"github.com/exokey/exokey/internal/secret"
)

// The tenancy suite plays a hostile tenant: it may create, update, patch and
// delete AccessKeys, Secrets and Deployments in its own namespace, with their
// labels, annotations, finalizers and owner references, but not their status.
// Each spec is one hole of the security review; each failed before its fix.
var _ = Describe("Tenant boundary", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })

	// 1. The crash-safety record and key identities are not tenant-writable.
	Context("a forged crash-safety record", func() {
		for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
			It(fmt.Sprintf("cannot make exokey revoke a key it did not mint for the AccessKey (%s)", api), func() {
				victim := mintOutsideTheManager(api, "victim-"+namespace)
				ak := waitReady(newAccessKey(namespace, "forger", api, func(ak *iamv1beta1.AccessKey) {
					ak.Finalizers = []string{iamv1beta1.RevokeFinalizer}
					ak.Annotations = map[string]string{forgedPendingAnnotation: pendingRecord(victim.Name, "")}
				}))
				Expect(ak.Status.KeyID).NotTo(Equal(victim.ID))
				Consistently(func() bool { return authenticates(victim.ID, victim.Secret.Reveal()) }, 2*time.Second, poll).Should(BeTrue())
				Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
				Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(BeEmpty())
				Expect(authenticates(victim.ID, victim.Secret.Reveal())).To(BeTrue(), "the victim key survives the forger's deletion")
			})

			It(fmt.Sprintf("cannot make exokey adopt, then revoke, a key named in a forged Secret (%s)", api), func() {
				victim := mintOutsideTheManager(api, "victim-"+namespace)
				ak := newAccessKey(namespace, "adopter", api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = "not-yet" })
				waitRefused(ak, ReasonIssuerNotFound)
				createSecretAsPublished(ak, victim.Key, "unknown to the tenant")
				edit(ak, func(ak *iamv1beta1.AccessKey) {
					ak.Spec.IssuerRef.Name = issuerName(api)
					ak.Finalizers = []string{iamv1beta1.RevokeFinalizer}
					ak.Annotations = map[string]string{forgedPendingAnnotation: pendingRecord(victim.Name, restrictionHash(ak))}
				})
				got := waitReady(ak)
				Expect(got.Status.KeyID).NotTo(Equal(victim.ID), "the forged key is not adopted")
				Expect(k8sClient.Delete(ctx, got)).To(Succeed())
				Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), ak) }, timeout, poll).Should(Satisfy(isNotFound))
				Expect(authenticates(victim.ID, victim.Secret.Reveal())).To(BeTrue(), "the victim key survives")
			})
		}
	})

	// 2. Templates are sandboxed.
	It("refuses template constructs that can recurse or blow up before minting anything", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		for name, data := range map[string]string{
			"define":  `{{define "k"}}{{.KeyID}}{{end}}{{template "k" .}}`,
			"printf":  `{{printf "%20000000d" 1}}`,
			"nesting": strings.Repeat("{{if true}}", 40) + "x" + strings.Repeat("{{end}}", 40),
			// The bomb: a range over an integer writes nothing, so no
			// output cap trips; it is refused before it runs.
			"range-bomb": `{{range 9000000000000000000}}{{end}}`,
			"steps":      `{{range .Annotations}}` + strings.Repeat(`{{if .}}{{end}}`, 200) + `{{end}}`,
		} {
			ak := newAccessKey(namespace, "template-"+name, api, func(ak *iamv1beta1.AccessKey) {
				ak.Spec.Secret = iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate,
					Template: iamv1beta1.SecretTemplate{Data: map[string]string{"value": data}}}
				ak.Annotations = map[string]string{}
				for i := range 200 {
					ak.Annotations[fmt.Sprintf("tenant.example/a%d", i)] = "x"
				}
			})
			message := waitRefused(ak, ReasonInvalidSpec)
			Expect(message).To(ContainSubstring("secret.template.data[value]"), name)
			Expect(message).To(ContainSubstring(map[string]string{"range-bomb": "range goes over .Labels or .Annotations only",
				"steps": "steps, over the budget of 20000"}[name]), "%s: the message says what exceeded the budget", name)
			Expect(condition(fetch(ak), ConditionStalled)).NotTo(BeNil(), "%s: only an edit fixes it", name)
			Consistently(func() []string { return liveKeysOf(ak) }, 2*time.Second, poll).Should(BeEmpty(), name)
		}
		// Another tenant is served meanwhile.
		waitReady(newAccessKey(newNamespace(nil), "neighbour", api))
	})

	// 3. A secret never reaches a condition, an event or a loop of mints.
	It("keeps .Secret out of labels and never quotes a secret in a condition or event", func() {
		ak := newAccessKey(namespace, "leaky", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Secret = iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate,
				Template: iamv1beta1.SecretTemplate{
					Data:   map[string]string{"key": "{{.KeyID}}"},
					Labels: map[string]string{"leak": "!{{.Secret}}"},
				}}
		})
		Expect(waitRefused(ak, ReasonInvalidSpec)).To(ContainSubstring(".Secret"))
		Consistently(func() []string { return liveKeysOf(ak) }, 2*time.Second, poll).Should(BeEmpty(), "nothing is minted")
		quoted := regexp.MustCompile(`![A-Za-z0-9_-]{43}`)
		Expect(quoted.FindString(conditionsAndEvents(ak))).To(BeEmpty())
	})

	// 4. Refused AccessKeys keep no key alive beyond its time.
	It("revokes a retiring key on time while the AccessKey is refused", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		ak := waitReady(newAccessKey(namespace, "refused-retiring", api))
		old := secretOf(ak)
		ak = waitReady(edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-object"} }))
		Expect(ak.Status.Retiring).To(HaveLen(1))
		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = "gone" })
		waitRefused(ak, ReasonIssuerNotFound)
		Eventually(func() bool {
			return authenticates(string(old.Data["EXOSCALE_API_KEY"]), string(old.Data["EXOSCALE_API_SECRET"]))
		}, timeout, poll).Should(BeFalse(), "the retiring key is revoked after its grace period")
	})

	It("revokes a key beyond a narrowed ceiling at once", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		iss := clusterIssuer("narrowing-"+namespace, api, nil)
		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		ak := waitReady(newAccessKey(namespace, "beyond", api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = iss.Name }))
		s := secretOf(ak)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), iss)).To(Succeed())
		iss.Spec.Allowed = iamv1beta1.Allowed{Operations: []string{"list-zones"}}
		Expect(k8sClient.Update(ctx, iss)).To(Succeed())
		waitRefused(ak, ReasonNotPermitted)
		Eventually(func() bool {
			return authenticates(string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]))
		}, timeout, poll).Should(BeFalse(), "the key beyond the ceiling is revoked")
		Expect(conditionsAndEvents(ak)).To(ContainSubstring("beyond"))
	})

	// 5. Keys are revoked through the issuer that minted them.
	It("revokes a retiring key through the issuer that minted it, not the one named now", func() {
		otherOrg, err := emulator.New(emulator.Options{})
		Expect(err).NotTo(HaveOccurred())
		server := httptest.NewServer(otherOrg)
		DeferCleanup(server.Close)
		key, secretValue := otherOrg.Root()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other-org", Namespace: namespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": key, "EXOSCALE_API_SECRET": secretValue}})).To(Succeed())
		other := clusterIssuer("other-org-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
		other.Spec.Endpoint = server.URL + "/v2"
		other.Spec.CredentialsRef = iamv1beta1.CredentialsReference{Name: "other-org", Namespace: namespace}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())

		ak := waitReady(newAccessKey(namespace, "mover", iamv1beta1.IssuerAPIIAMv3))
		first := secretOf(ak)
		ak = waitReady(edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = other.Name }))
		Expect(ak.Status.Retiring).To(HaveLen(1))
		Eventually(func() []iamv1beta1.RetiringKey { return fetch(ak).Status.Retiring }, timeout, poll).Should(BeEmpty())
		Expect(authenticates(string(first.Data["EXOSCALE_API_KEY"]), string(first.Data["EXOSCALE_API_SECRET"]))).To(BeFalse(),
			"the key is revoked in the organisation that minted it")
	})

	// 6. A tenant cannot keep keys alive for long, or pile them up.
	It("caps the grace period and the live keys of an AccessKey", func() {
		ak := waitReady(newAccessKey(namespace, "hoarder", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(24 * 365 * time.Hour)
		}))
		for i := range 5 {
			ak = edit(ak, func(ak *iamv1beta1.AccessKey) {
				if ak.Annotations == nil {
					ak.Annotations = map[string]string{}
				}
				ak.Annotations[iamv1beta1.RotateAnnotation] = fmt.Sprint(i)
			})
			time.Sleep(300 * time.Millisecond) // a tenant's loop, not a wait for exokey
		}
		Consistently(func() int { return len(liveKeysOf(ak)) }, 3*time.Second, poll).Should(BeNumerically("<=", 3))
		for _, old := range fetch(ak).Status.Retiring {
			Expect(old.RevokeAt.Time).To(BeTemporally("<=", testClock.Now().Add(time.Hour+time.Minute)))
		}
	})

	It("cannot make exokey renew a session credential every second: a ttl below the issuer's floor is refused", func() {
		// An issuer with the default limits: minSessionTTL 15m.
		strict := clusterIssuer("strict-ttl-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
		strict.Spec.Limits = iamv1beta1.IssuerLimits{}
		Expect(k8sClient.Create(ctx, strict)).To(Succeed())
		ak := sessionKey(namespace, "churner", time.Second, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = strict.Name })
		Expect(waitRefused(ak, ReasonNotPermitted)).To(ContainSubstring(
			fmt.Sprintf("spec.ttlSeconds (1s) is shorter than ClusterKeyIssuer %q allows (limits.minSessionTTLSeconds, 15m0s)", strict.Name)))
		Consistently(func() []string { return rolesOf(ak) }, 2*time.Second, poll).Should(BeEmpty(), "no role, no credential")

		// At the floor it is served.
		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.TTLSeconds = iamv1beta1.SecondsOf(15 * time.Minute) })
		Expect(waitReady(ak).Status.ExpiresAt).NotTo(BeNil())
	})

	// 7. A label does not decide what the manager keeps in memory.
	It("does not cache the data of a Secret merely labelled as exokey's", func() {
		junk := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "junk", Namespace: namespace,
				Labels: map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue}},
			Data: map[string][]byte{"blob": []byte(strings.Repeat("x", 256<<10))},
		}
		Expect(k8sClient.Create(ctx, junk)).To(Succeed())
		cached := &corev1.Secret{}
		Eventually(func() error { return managerCache.Get(ctx, client.ObjectKeyFromObject(junk), cached) }, timeout, poll).Should(Succeed())
		Expect(cached.Data).To(HaveLen(1))
		Expect(cached.Data).To(HaveKey(observedDataKey), "only a verdict on the data is kept")
		Expect(checksumOK(cached)).To(BeFalse(), "data exokey did not publish is not judged intact")
	})

	It("keeps a cached Secret's verdict when the cache starts from a list, where no tenant can forge it", func() {
		data := map[string][]byte{"EXOSCALE_API_KEY": []byte("EXOlisted")}
		listed := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "listed", Namespace: namespace,
				Labels:      map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue},
				Annotations: map[string]string{iamv1beta1.ChecksumAnnotation: secret.Checksum(data)}},
			Data: data,
		}
		Expect(k8sClient.Create(ctx, listed)).To(Succeed())
		// A cache started now (a restarted manager's) gets the Secret from
		// a list, which client-go passes through the transform twice.
		restarted, err := cache.New(cfg, cache.Options{Scheme: scheme,
			ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: SecretCache()}})
		Expect(err).NotTo(HaveOccurred())
		cacheCtx, stop := context.WithCancel(ctx)
		DeferCleanup(stop)
		go func() { _ = restarted.Start(cacheCtx) }()
		cached := &corev1.Secret{}
		Eventually(func() error { return restarted.Get(ctx, client.ObjectKeyFromObject(listed), cached) }, timeout, poll).Should(Succeed())
		Expect(cached.Data).NotTo(HaveKey("EXOSCALE_API_KEY"))
		Expect(checksumOK(cached)).To(BeTrue(), "the cached verdict is that of the Secret's data")

		// The record the transform keeps is a data key the API server refuses.
		forged := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "forged", Namespace: namespace,
				Labels: map[string]string{iamv1beta1.ManagedByLabel: iamv1beta1.ManagedByValue}},
			Data: map[string][]byte{observedDataKey: intactData[observedDataKey]},
		}
		Expect(apierrors.IsInvalid(k8sClient.Create(ctx, forged))).To(BeTrue(), "a tenant cannot write the cache's verdict")
	})

	// 8. A create whose response is lost leaves no second key.
	for _, tc := range []struct {
		api       iamv1beta1.IssuerAPI
		operation string
	}{
		{iamv1beta1.IssuerAPIIAMv3, "create-api-key"},
		{iamv1beta1.IssuerAPIIAMv3, "create-iam-role"},
		{iamv1beta1.IssuerAPIAccessKeyV2, "create-access-key"},
	} {
		It(fmt.Sprintf("recovers a %s whose response was lost without leaking a key", tc.operation), func() {
			emu.SetFaults(emulator.Faults{LoseResponseNext: 1, LoseResponseOperations: []string{tc.operation}})
			DeferCleanup(func() { emu.SetFaults(emulator.Faults{}) })
			before := emu.Stats().ByOperationStatus[tc.operation+" 504"]
			ak := waitReady(newAccessKey(namespace, "lost-answer", tc.api))
			Expect(emu.Stats().ByOperationStatus[tc.operation+" 504"]).To(Equal(before+1), "the fault hit this AccessKey's create")
			Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(ConsistOf(fetch(ak).Status.KeyID))
			if tc.api == iamv1beta1.IssuerAPIIAMv3 {
				Eventually(func() int { return rolesNamed("k8s-" + namespace + "-") }, timeout, poll).Should(Equal(1))
			}
		})
	}

	// 9. Keys are not left behind.
	It("revokes the retiring keys of an orphaned AccessKey and keeps only the current one", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		orphans := clusterIssuer("orphans-"+namespace, api, nil)
		orphans.Spec.AllowedDeletionPolicies = []iamv1beta1.DeletionPolicy{iamv1beta1.DeletionPolicyDelete, iamv1beta1.DeletionPolicyOrphan}
		Expect(k8sClient.Create(ctx, orphans)).To(Succeed())
		ak := waitReady(newAccessKey(namespace, "orphan-retiring", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.IssuerRef.Name = orphans.Name
			ak.Spec.DeletionPolicy = iamv1beta1.DeletionPolicyOrphan
			ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(30 * time.Minute)
		}))
		ak = waitReady(edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-object"} }))
		current, retiring := ak.Status.KeyID, ak.Status.Retiring[0].KeyID
		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(ConsistOf(current))
		Expect(liveKeysOf(ak)).NotTo(ContainElement(retiring))
		Consistently(func() []string { return liveKeysOf(ak) }, 3*time.Second, poll).Should(ConsistOf(current),
			"the orphan sweep leaves a key kept on purpose")
		DeferCleanup(func() { Expect(rootKeys[api].Revoke(ctx, exoscale.Key{ID: current})).To(Succeed()) })
	})

	It("refuses deletionPolicy Orphan on an issuer that does not allow it, and revokes on delete", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		ak := waitReady(newAccessKey(namespace, "orphan-forbidden", api))
		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.DeletionPolicy = iamv1beta1.DeletionPolicyOrphan })
		Expect(waitRefused(ak, ReasonNotPermitted)).To(ContainSubstring("deletionPolicy Orphan"))
		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() []string { return liveKeysOf(ak) }, timeout, poll).Should(BeEmpty())
	})

	It("sweeps the keys exokey minted whose AccessKey is gone, and only those", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		live := waitReady(newAccessKey(namespace, "live", api))
		mint := func(name, uid, cluster string) exoscale.Credential {
			cred, err := rootKeys[api].Create(ctx, exoscale.KeySpec{Name: name, Operations: []string{"get-sos-object"}, Labels: map[string]string{
				LabelNamespace: namespace, LabelName: "gone", LabelUID: uid, LabelCluster: cluster}})
			Expect(err).NotTo(HaveOccurred())
			return cred
		}
		// What a tenant who strips the finalizer in the instant before the
		// manager sees the deletion leaves behind.
		leaked := mint("k8s-"+namespace+"-gone-0a0b0c0d0e0f", "uid-of-a-deleted-accesskey", clusterID)
		elsewhere := mint("elsewhere-"+namespace, "uid-in-another-cluster", "another-cluster")
		DeferCleanup(func() { Expect(rootKeys[api].Revoke(ctx, elsewhere.Key)).To(Succeed()) })

		Eventually(func() bool { return authenticates(leaked.ID, leaked.Secret.Reveal()) }, timeout, poll).Should(BeFalse())
		Expect(authenticates(elsewhere.ID, elsewhere.Secret.Reveal())).To(BeTrue(), "another cluster's key is not this sweep's")
		Expect(liveKeysOf(live)).To(ConsistOf(fetch(live).Status.KeyID), "a live AccessKey's key is not swept")
		Expect(counter("exokey_orphaned_keys_total", "action", "revoked")).To(BeNumerically(">=", 1))
	})

	It("sweeps a key minted for a live AccessKey that its status does not name (a create forgotten), and not its own", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		live := waitReady(newAccessKey(namespace, "live", api))
		// What a recovery leaves when its lookup ran before Exoscale's role
		// operation finished: a role labelled for the AccessKey, named as
		// its keys are, that no record names.
		labels := map[string]string{LabelNamespace: namespace, LabelName: live.Name, LabelUID: string(live.UID), LabelCluster: clusterID}
		forgotten, err := rootKeys[api].Create(ctx, exoscale.KeySpec{Name: testKeyNames.name("k8s-"+namespace+"-live", live.UID),
			Operations: []string{"get-sos-object"}, Labels: labels})
		Expect(err).NotTo(HaveOccurred())
		// Labels alone are anyone's with IAM rights: a role whose name does
		// not prove the AccessKey is not exokey's to revoke.
		unproven, err := rootKeys[api].Create(ctx, exoscale.KeySpec{Name: "k8s-" + namespace + "-live-0a0b0c0d0e0f",
			Operations: []string{"get-sos-object"}, Labels: labels})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(rootKeys[api].Revoke(ctx, unproven.Key)).To(Succeed()) })
		Eventually(func() bool { return authenticates(forgotten.ID, forgotten.Secret.Reveal()) }, timeout, poll).Should(BeFalse())
		Expect(authenticates(unproven.ID, unproven.Secret.Reveal())).To(BeTrue(), "a role whose name proves nothing is left alone")
		Expect(liveKeysOf(live)).To(ConsistOf(fetch(live).Status.KeyID, unproven.ID), "the AccessKey's own key is not swept")
		Expect(allowed(secretOf(live), "get-sos-object", "backups")).To(BeTrue())
	})

	// 10. Wildcards in a ceiling do not reach IAM administration.
	It("does not grant IAM operations through a wildcard ceiling", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		wild := clusterIssuer("wild-"+namespace, api, nil)
		wild.Spec.Allowed = iamv1beta1.Allowed{Operations: []string{"create-*", "get-*"}, Tags: []string{"*"}}
		Expect(k8sClient.Create(ctx, wild)).To(Succeed())
		for name, mutate := range map[string]func(*iamv1beta1.AccessKey){
			"operation": func(ak *iamv1beta1.AccessKey) {
				ak.Spec.Operations, ak.Spec.Resources = []string{"create-api-key"}, nil
			},
			"tag": func(ak *iamv1beta1.AccessKey) {
				ak.Spec.Operations, ak.Spec.Tags, ak.Spec.Resources = nil, []string{"iam"}, nil
			},
		} {
			ak := newAccessKey(namespace, "iam-"+name, api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = wild.Name }, mutate)
			Expect(waitRefused(ak, ReasonNotPermitted)).To(ContainSubstring("named explicitly"), name)
			Consistently(func() []string { return liveKeysOf(ak) }, time.Second, poll).Should(BeEmpty())
		}
	})

	// 11. Smaller ones.
	It("refuses an issuer endpoint over plain http beyond loopback", func() {
		iss := clusterIssuer("plain-http-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
		iss.Spec.Endpoint = "http://exoscale.example.invalid/v2"
		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		Eventually(func() string { return issuerCondition(iss.Name).Reason }, timeout, poll).Should(Equal(ReasonInsecureEndpoint))
	})

	It("refuses an operation name too long to be one at admission", func() {
		ak := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "long", Namespace: namespace},
			Spec: iamv1beta1.AccessKeySpec{IssuerRef: iamv1beta1.IssuerReference{Name: issuerName(iamv1beta1.IssuerAPIIAMv3)},
				Operations: []string{strings.Repeat("a", 10000)}}}
		Expect(k8sClient.Create(ctx, ak)).To(MatchError(ContainSubstring("spec.operations[0]")))
	})

	// 12. exokey does not reconcile again for the watch events of its own
	// writes; a tenant's writes are events of their own.
	It("acts at once on edits a tenant lands right on exokey's own writes", func() {
		// A dropped edit would wait for the resync (driftCheckPeriod, 2 s
		// and up to half again, counted from the last pass, which has just
		// ended): each edit below must be acted on within less.
		const atOnce = 1500 * time.Millisecond
		ak := waitReady(newAccessKey(namespace, "racer", iamv1beta1.IssuerAPIIAMv3))
		// Right after the status write that made it Ready: the event of that
		// write is exokey's own and dropped, the edit's must not be.
		edited := edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = append(ak.Spec.Operations, "put-sos-object") })
		Eventually(func() int64 { return ptr.Deref(fetch(ak).Status.ObservedGeneration, 0) }, atOnce, 20*time.Millisecond).
			Should(Equal(edited.Generation), "the edit of the spec was not acted on at once")
		ak = waitReady(ak)
		// A metadata edit (no new generation) on exokey's last write: the
		// rotation it asks for starts at once too (a third live key, within
		// the default of three).
		first := ak.Status.KeyID
		edit(ak, func(ak *iamv1beta1.AccessKey) {
			ak.Annotations = map[string]string{iamv1beta1.RotateAnnotation: "now"}
		})
		Eventually(func() string { return fetch(ak).Status.KeyID }, atOnce, 20*time.Millisecond).ShouldNot(Equal(first),
			"the rotation the tenant asked for did not start at once")
	})

	It("restarts only workloads that consume the Secret", func() {
		consumer := deployment(namespace, "consumer", "rolled")
		bystander := deployment(namespace, "bystander", "someone-else")
		ak := waitReady(newAccessKey(namespace, "rolled", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.RestartTargets = []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: consumer.Name}, {Kind: "Deployment", Name: bystander.Name}}
		}))
		Eventually(func() map[string]string { return podAnnotations(consumer) }, timeout, poll).Should(HaveKey(RestartAnnotation))
		Expect(podAnnotations(bystander)).NotTo(HaveKey(RestartAnnotation))
		Expect(conditionsAndEvents(ak)).To(ContainSubstring("does not consume Secret"))
	})
})

var _ = Describe("Consumers injected by the webhook", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })

	It("rolls an injected Deployment on a new key, without restartTargets", func() {
		consumer := injectedDeployment(namespace, "app", map[string]string{inject.AnnotationAccessKeys: "creds"})
		ak := waitReady(newAccessKey(namespace, "creds", iamv1beta1.IssuerAPIIAMv3))
		injectedPod(namespace, "app-1", consumer, "creds")
		first := ak.Status.KeyID
		edit(ak, func(ak *iamv1beta1.AccessKey) {
			ak.Annotations = map[string]string{iamv1beta1.RotateAnnotation: "now"}
		})
		waitReplaced(ak, first)
		Eventually(func() map[string]string { return podAnnotations(consumer) }, timeout, poll).
			Should(HaveKeyWithValue(RestartAnnotation, secretOf(ak).Annotations[iamv1beta1.ChecksumAnnotation]))
	})

	// The tenant writes its pods' annotations and owner references: a pod
	// that claims an injection and names a workload as its owner rolls that
	// workload only if the workload's own pods ask for the AccessKey.
	It("cannot make exokey roll a workload whose pods do not ask for the AccessKey", func() {
		bystander := injectedDeployment(namespace, "bystander", map[string]string{inject.AnnotationAccessKeys: "someone-else"})
		plain := deployment(namespace, "plain", "unrelated")
		ak := waitReady(newAccessKey(namespace, "bait", iamv1beta1.IssuerAPIIAMv3))
		injectedPod(namespace, "forged-1", bystander, "bait")
		injectedPod(namespace, "forged-2", plain, "bait")
		first := ak.Status.KeyID
		edit(ak, func(ak *iamv1beta1.AccessKey) {
			ak.Annotations = map[string]string{iamv1beta1.RotateAnnotation: "now"}
		})
		waitReplaced(ak, first)
		Consistently(func() map[string]string { return podAnnotations(bystander) }, 2*time.Second, poll).ShouldNot(HaveKey(RestartAnnotation))
		Expect(podAnnotations(plain)).NotTo(HaveKey(RestartAnnotation))
	})
})

// injectedDeployment is a Deployment whose pods opt in to injection.
func injectedDeployment(namespace, name string, annotations map[string]string) *appsv1.Deployment {
	return newDeployment(namespace, name, func(t *corev1.PodTemplateSpec) {
		t.Labels[inject.LabelInject], t.Annotations = "true", annotations
	})
}

// injectedPod creates what a Deployment's ReplicaSet and the webhook make:
// a ReplicaSet the Deployment controls, and a pod it controls recording
// the AccessKeys injected into it.
func injectedPod(namespace, name string, d *appsv1.Deployment, accessKeys string) {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-rs", Namespace: namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, rs)).To(Succeed())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
			Labels:          map[string]string{inject.LabelInject: "true"},
			Annotations:     map[string]string{inject.AnnotationInjected: accessKeys},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, pod)).To(Succeed())
	// The manager finds it through its cache.
	EventuallyWithOffset(1, func() error {
		return managerCache.Get(ctx, client.ObjectKeyFromObject(pod), InjectedPod())
	}, timeout, poll).Should(Succeed())
}

// conditionsAndEvents is everything a tenant can read about an AccessKey
// besides its spec: its conditions and the events of its namespace.
func conditionsAndEvents(ak *iamv1beta1.AccessKey) string {
	var out strings.Builder
	for _, c := range fetch(ak).Status.Conditions {
		fmt.Fprintf(&out, "%s %s %s\n", c.Type, c.Reason, c.Message)
	}
	events := &corev1.EventList{}
	ExpectWithOffset(1, k8sClient.List(ctx, events, client.InNamespace(ak.Namespace))).To(Succeed())
	for _, e := range events.Items {
		fmt.Fprintf(&out, "%s %s %s\n", e.Type, e.Reason, e.Message)
	}
	return out.String()
}

// rolesNamed counts the emulator's IAM roles whose name starts with prefix.
func rolesNamed(prefix string) int {
	n := 0
	for _, r := range emu.Roles() {
		if strings.HasPrefix(r.Name, prefix) {
			n++
		}
	}
	return n
}

func issuerCondition(name string) metav1.Condition {
	got := &iamv1beta1.ClusterKeyIssuer{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Name: name}, got)).To(Succeed())
	if c := condition(&iamv1beta1.AccessKey{Status: iamv1beta1.AccessKeyStatus{Conditions: got.Status.Conditions}}, ConditionReady); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// deployment creates a Deployment whose pods read the named Secret through envFrom.
func deployment(namespace, name, secretName string) *appsv1.Deployment {
	return newDeployment(namespace, name, func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: secretName}}}}
	})
}

// newDeployment creates a Deployment of one container, its pod template
// changed by change.
func newDeployment(namespace, name string, change func(*corev1.PodTemplateSpec)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
			},
		},
	}
	change(&d.Spec.Template)
	ExpectWithOffset(2, k8sClient.Create(ctx, d)).To(Succeed())
	return d
}

func podAnnotations(d *appsv1.Deployment) map[string]string {
	got := &appsv1.Deployment{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(d), got)).To(Succeed())
	return got.Spec.Template.Annotations
}

// A tenant who may write its AccessKey's status (where the status admission
// policy is not installed) names another team's key there.
var _ = Describe("Status that names another team's key", func() {
	forge := func(ak *iamv1beta1.AccessKey, change func(*iamv1beta1.AccessKeyStatus)) {
		GinkgoHelper()
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got := fetch(ak)
			change(&got.Status)
			return k8sClient.Status().Update(ctx, got)
		})).To(Succeed())
	}
	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		forgery(api, forge)
	}
})

// forgery names another team's key in an attacker's status, on api.
func forgery(api iamv1beta1.IssuerAPI, forge func(*iamv1beta1.AccessKey, func(*iamv1beta1.AccessKeyStatus))) {
	It(fmt.Sprintf("as a retiring key: the other key stays alive and working, and the entry is dropped with a Warning (%s)", api), func() {
		victim := waitReady(newAccessKey(newNamespace(nil), "victim", api))
		attacker := waitReady(newAccessKey(newNamespace(nil), "attacker", api))
		forge(attacker, func(s *iamv1beta1.AccessKeyStatus) {
			s.Retiring = append(s.Retiring, iamv1beta1.RetiringKey{KeyID: victim.Status.KeyID, KeyName: victim.Status.KeyName,
				RoleID:   attacker.Status.RoleID, // its own role: the key's real role is read at Exoscale
				RevokeAt: ptr.To(metav1.NewTime(time.Now().Add(-time.Minute))), Issuer: attacker.Status.Issuer})
		})
		Eventually(func() string { return eventsOf(attacker, EventKeyNotOwned) }, timeout, poll).Should(ContainSubstring(victim.Status.KeyID))
		Eventually(func() []iamv1beta1.RetiringKey { return fetch(attacker).Status.Retiring }, timeout, poll).Should(BeEmpty())
		Expect(allowed(secretOf(victim), "get-sos-object", "backups")).To(BeTrue(), "the victim's key works")
		Expect(allowed(secretOf(attacker), "get-sos-object", "backups")).To(BeTrue(), "the attacker's own key and role are untouched")
	})

	It(fmt.Sprintf("as a pending create: recovery leaves the other key alive (%s)", api), func() {
		victim := waitReady(newAccessKey(newNamespace(nil), "victim", api))
		attacker := waitReady(newAccessKey(newNamespace(nil), "attacker", api))
		forge(attacker, func(s *iamv1beta1.AccessKeyStatus) {
			// Started long ago: a create that could still be finishing keeps
			// its record without touching anything; this one is settled.
			s.Pending = iamv1beta1.PendingKey{KeyName: victim.Status.KeyName, StartedAt: ptr.To(metav1.NewTime(time.Now().Add(-time.Hour))),
				Issuer: attacker.Status.Issuer}
		})
		Eventually(func() iamv1beta1.PendingKey { return fetch(attacker).Status.Pending }, timeout, poll).Should(BeZero())
		Consistently(func() bool { return allowed(secretOf(victim), "get-sos-object", "backups") }, 2*time.Second, poll).Should(BeTrue(),
			"the victim's key survives the recovery of a forged pending record")
	})

	It(fmt.Sprintf("as the current key: deleting the AccessKey leaves the other key alive (%s)", api), func() {
		victim := waitReady(newAccessKey(newNamespace(nil), "victim", api))
		attacker := waitReady(newAccessKey(newNamespace(nil), "attacker", api))
		own := attacker.Status.KeyID
		forge(attacker, func(s *iamv1beta1.AccessKeyStatus) {
			s.Retiring = append(s.Retiring, iamv1beta1.RetiringKey{KeyID: own, KeyName: attacker.Status.KeyName, RoleID: attacker.Status.RoleID,
				RevokeAt: ptr.To(metav1.NewTime(time.Now().Add(time.Hour))), Issuer: attacker.Status.Issuer})
			s.KeyID, s.KeyName, s.RoleID = victim.Status.KeyID, victim.Status.KeyName, victim.Status.RoleID
		})
		Expect(k8sClient.Delete(ctx, attacker)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(attacker), &iamv1beta1.AccessKey{})
		}, timeout, poll).
			Should(Satisfy(isNotFound))
		Expect(allowed(secretOf(victim), "get-sos-object", "backups")).To(BeTrue(), "the victim's key survives the attacker's deletion")
		Expect(liveKeysOf(attacker)).To(BeEmpty(), "the attacker's own key, named as retiring, is revoked")
	})
}
