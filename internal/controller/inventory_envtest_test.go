package controller

import (
	"encoding/json"
	"fmt"
	"time"

	v3 "github.com/exoscale/egoscale/v3"
	"github.com/exoscale/egoscale/v3/credentials"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// Rights are held true continuously: the inventory lists each issuer once a
// drift period (2 s here), and what was edited at Exoscale behind exokey's
// back is put back within two periods. Each spec plays whoever holds IAM
// rights in the organisation (an admin in the portal, a script, a stolen
// key), through the same SDK.

// driftDeadline is two drift periods and the time to act on them.
const driftDeadline = 2*driftCheckPeriod + 3*time.Second

var _ = Describe("Drift", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })

	It("puts back a role widened out of band to allow everything, with a Warning", func() {
		ak := waitReady(newAccessKey(namespace, "widened", iamv1beta1.IssuerAPIIAMv3))
		s := secretOf(ak)
		Expect(allowed(s, "create-api-key", "")).To(BeFalse())
		corrections := driftCorrections(ak, DriftWidened)

		editRoleOutOfBand(ak.Status.RoleID, policy.Policy{DefaultServiceStrategy: "allow"})
		Expect(allowed(s, "create-api-key", "")).To(BeTrue(), "the edit took: the key holds everything")

		Eventually(func() bool { return allowed(s, "create-api-key", "") }, driftDeadline, poll).Should(BeFalse())
		Expect(allowed(s, "get-sos-object", "backups")).To(BeTrue(), "it may do again what its AccessKey grants")
		Expect(allowed(s, "get-sos-object", "someone-elses")).To(BeFalse(), "and not on another bucket")
		Expect(allowed(s, "list-zones", "")).To(BeFalse())
		Expect(fetch(ak).Status.KeyID).To(Equal(ak.Status.KeyID), "put back in place: the workload keeps its key")
		Eventually(func() string { return eventsOf(ak, EventRoleDrifted) }, timeout, poll).Should(
			SatisfyAll(ContainSubstring("widened"), ContainSubstring(ak.Status.RoleID), ContainSubstring("allow[]")))
		Expect(eventsOf(ak, EventRoleDrifted)).NotTo(ContainSubstring(string(s.Data["EXOSCALE_API_SECRET"])))
		Expect(driftCorrections(ak, DriftWidened)).To(BeNumerically(">", corrections))
	})

	It("gives back the rights of a role narrowed out of band to deny everything", func() {
		ak := waitReady(newAccessKey(namespace, "narrowed", iamv1beta1.IssuerAPIIAMv3))
		s := secretOf(ak)
		editRoleOutOfBand(ak.Status.RoleID, policy.Policy{DefaultServiceStrategy: "deny"})
		Expect(allowed(s, "get-sos-object", "backups")).To(BeFalse(), "the edit took")

		Eventually(func() bool { return allowed(s, "get-sos-object", "backups") }, driftDeadline, poll).Should(BeTrue())
		Expect(allowed(s, "put-sos-object", "backups")).To(BeFalse())
		Eventually(func() string { return eventsOf(ak, EventRoleDrifted) }, timeout, poll).Should(ContainSubstring("narrowed"))
	})

	It("checks the role of a session credential the same way", func() {
		ak := waitReady(newAccessKey(namespace, "session", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.TTLSeconds = iamv1beta1.SecondsOf(time.Hour)
		}))
		s := secretOf(ak)
		editRoleOutOfBand(ak.Status.RoleID, policy.Policy{DefaultServiceStrategy: "allow"})
		Expect(allowed(s, "create-api-key", "")).To(BeTrue(), "the edit took")
		Eventually(func() bool { return allowed(s, "create-api-key", "") }, driftDeadline, poll).Should(BeFalse())
		Expect(allowed(s, "get-sos-object", "backups")).To(BeTrue())
	})

	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		It(fmt.Sprintf("replaces a key deleted out of band (%s)", api), func() {
			ak := waitReady(newAccessKey(namespace, "deleted-"+lower(api), api))
			Expect(rootKeys[api].Revoke(ctx, exoscale.Key{ID: ak.Status.KeyID, RoleID: ak.Status.RoleID})).To(Succeed())
			waitReplaced(ak, ak.Status.KeyID)
		})
	}

	It("replaces a key whose role was relabelled out of band, and revokes the old one at once", func() {
		ak := waitReady(newAccessKey(namespace, "relabelled", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(time.Hour)
		}))
		s := secretOf(ak)
		relabelRoleOutOfBand(ak.Status.RoleID, map[string]string{LabelUID: "someone-else"})
		got := waitReplaced(ak, ak.Status.KeyID)
		for _, old := range got.Status.Retiring {
			Expect(old.RevokeAt.Sub(testClock.Now())).To(BeNumerically("<", time.Minute), "revoked at once, not after the hour of grace")
		}
		Eventually(func() []iamv1beta1.RetiringKey { return fetch(ak).Status.Retiring }, timeout, poll).Should(BeEmpty())
		Eventually(func() bool {
			return authenticates(string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]))
		}, timeout, poll).Should(BeFalse(), "the old key goes at once, not after the hour of grace")
	})

	It("looks each key up on its own where the issuer's key may not list, says so on the issuer, and still replaces a deleted key", func() {
		// A key that mints and revokes IAM v3 keys, but may not list them.
		iss := issuerOfKey(namespace, "no-list")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), iss)).To(Succeed())
			ready := condition(&iamv1beta1.AccessKey{Status: iamv1beta1.AccessKeyStatus{Conditions: iss.Status.Conditions}}, ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(ready.Message).To(SatisfyAll(ContainSubstring("without list-iam-roles"), ContainSubstring("without list-api-keys"),
				ContainSubstring("without update-iam-role-policy")))
		}, timeout, poll).Should(Succeed())

		ak := waitReady(newAccessKey(namespace, "unlisted", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.IssuerRef.Name = iss.Name
		}))
		Expect(rootKeys[iamv1beta1.IssuerAPIIAMv3].Revoke(ctx, exoscale.Key{ID: ak.Status.KeyID, RoleID: ak.Status.RoleID})).To(Succeed())
		waitReplaced(ak, ak.Status.KeyID)
	})

	Context("a narrowed ceiling", func() {
		narrow := func(iss *iamv1beta1.ClusterKeyIssuer) {
			Eventually(func() error {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), iss); err != nil {
					return err
				}
				iss.Spec.Allowed = iamv1beta1.Allowed{Operations: []string{"list-zones"}}
				return k8sClient.Update(ctx, iss)
			}, timeout, poll).Should(Succeed())
		}
		for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
			It(fmt.Sprintf("ends the old rights at once, whatever the AccessKey's gracePeriod (%s)", api), func() {
				iss := clusterIssuer("ceiling-"+lower(api)+"-"+namespace, api, nil)
				Expect(k8sClient.Create(ctx, iss)).To(Succeed())
				ak := waitReady(newAccessKey(namespace, "long-grace", api, func(ak *iamv1beta1.AccessKey) {
					ak.Spec.IssuerRef.Name = iss.Name
					ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(time.Hour)
				}))
				s := secretOf(ak)
				narrow(iss)
				Eventually(func() bool {
					return authenticates(string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]))
				}, driftCheckPeriod+3*time.Second, poll).Should(BeFalse(), "the key beyond the ceiling is revoked within a drift period")
				waitRefused(ak, ReasonNotPermitted)
			})
		}

		It("keeps a key beyond it for the issuer's beyondCeilingGrace, and no longer", func() {
			iss := clusterIssuer("ceiling-grace-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
			iss.Spec.Limits.BeyondCeilingGraceSeconds = ptr.To(iamv1beta1.SecondsOf(5 * time.Minute))
			Expect(k8sClient.Create(ctx, iss)).To(Succeed())
			ak := waitReady(newAccessKey(namespace, "issuer-grace", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
				ak.Spec.IssuerRef.Name = iss.Name
				ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(time.Hour)
			}))
			s := secretOf(ak)
			narrow(iss)
			var revokeAt time.Time
			Eventually(func(g Gomega) {
				retiring := fetch(ak).Status.Retiring
				g.Expect(retiring).To(HaveLen(1))
				revokeAt = retiring[0].RevokeAt.Time
			}, timeout, poll).Should(Succeed())
			Expect(revokeAt.Sub(testClock.Now())).To(BeNumerically("~", 5*time.Minute, 15*time.Second), "the issuer's 5 minutes, not the AccessKey's hour")
			Consistently(func() bool {
				return authenticates(string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]))
			}, 2*time.Second, poll).Should(BeTrue(), "it lives through its 5 minutes")
			testClock.advance(5 * time.Minute)
			Eventually(func() bool {
				return authenticates(string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]))
			}, timeout, poll).Should(BeFalse(), "and no longer")
		})
	})

	Context("a tenant", func() {
		It("cannot make the inventory rewrite a role labelled with another AccessKey's UID, or another cluster's", func() {
			victim := waitReady(newAccessKey(namespace, "victim", iamv1beta1.IssuerAPIIAMv3))
			wide := policy.Policy{DefaultServiceStrategy: "allow"}
			// Roles made outside this AccessKey's record, each with a wide
			// policy: one naming the victim's UID in this cluster, one
			// naming the victim in another cluster.
			decoys := map[string]map[string]string{
				"uid":     {LabelNamespace: victim.Namespace, LabelName: victim.Name, LabelUID: string(victim.UID), LabelCluster: clusterID},
				"cluster": {LabelNamespace: victim.Namespace, LabelName: victim.Name, LabelUID: string(victim.UID), LabelCluster: "another-cluster"},
			}
			roleIDs := map[string]string{}
			for name, labels := range decoys {
				cred, err := rootKeys[iamv1beta1.IssuerAPIIAMv3].Create(ctx, exoscale.KeySpec{
					Name: "decoy-" + name + "-" + namespace, Operations: []string{"get-sos-object"}, Labels: labels})
				Expect(err).NotTo(HaveOccurred())
				editRoleOutOfBand(cred.RoleID, wide)
				roleIDs[name] = cred.RoleID
			}
			// The tenant's own AccessKey carries forged labels naming the victim.
			forger := waitReady(newAccessKey(namespace, "forger", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
				ak.Labels = map[string]string{LabelUID: string(victim.UID), LabelCluster: "another-cluster"}
			}))
			Consistently(func(g Gomega) {
				for name, roleID := range roleIDs {
					g.Expect(rolePolicy(roleID)).To(Equal(wide), "decoy %s is never rewritten", name)
				}
			}, driftDeadline, poll).Should(Succeed())
			Expect(fetch(victim).Status.KeyID).To(Equal(victim.Status.KeyID), "the victim keeps its key")
			Expect(fetch(forger).Status.KeyID).To(Equal(forger.Status.KeyID), "the forger's labels change nothing")
			Expect(allowed(secretOf(forger), "create-api-key", "")).To(BeFalse())
		})
	})
})

// editRoleOutOfBand sets a role's policy with the organisation's root key,
// as an admin in the portal or a script would.
func editRoleOutOfBand(roleID string, p policy.Policy) {
	var wire v3.IAMPolicy
	raw, err := json.Marshal(p)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, json.Unmarshal(raw, &wire)).To(Succeed())
	op, err := rootClient().UpdateIAMRolePolicy(ctx, v3.UUID(roleID), wire)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, op.State).To(Equal(v3.OperationStateSuccess))
	ExpectWithOffset(1, rolePolicy(roleID)).To(Equal(p))
}

// relabelRoleOutOfBand sets some of a role's labels with the root key.
func relabelRoleOutOfBand(roleID string, labels map[string]string) {
	c := rootClient()
	role, err := c.GetIAMRole(ctx, v3.UUID(roleID))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	merged := role.Labels
	for k, v := range labels {
		merged[k] = v
	}
	op, err := c.UpdateIAMRole(ctx, v3.UUID(roleID), v3.UpdateIAMRoleRequest{Labels: merged})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, op.State).To(Equal(v3.OperationStateSuccess))
}

func rootClient() *v3.Client {
	rootKey, rootSecret := emu.Root()
	c, err := v3.NewClient(credentials.NewStaticCredentials(rootKey, rootSecret), v3.ClientOptWithEndpoint(v3.Endpoint(endpoint)))
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	return c
}

// rolePolicy is a role's policy as the emulator holds it.
func rolePolicy(roleID string) policy.Policy {
	for _, r := range emu.Roles() {
		if r.ID == roleID {
			return r.Policy
		}
	}
	Fail("no role " + roleID)
	return policy.Policy{}
}

// eventsOf joins the messages of an AccessKey's events of one reason.
func eventsOf(ak *iamv1beta1.AccessKey, reason string) string {
	events := &corev1.EventList{}
	ExpectWithOffset(1, k8sClient.List(ctx, events, client.InNamespace(ak.Namespace))).To(Succeed())
	var out string
	for _, e := range events.Items {
		if e.Reason == reason && e.InvolvedObject.Name == ak.Name {
			out += e.Type + " " + e.Message + "\n"
		}
	}
	return out
}

// driftCorrections reads exokey_drift_corrections_total for the
// ClusterKeyIssuer of ak.
func driftCorrections(ak *iamv1beta1.AccessKey, kind string) float64 {
	families, err := testRegistry.Gather()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	issuer := string(iamv1beta1.ClusterKeyIssuerKind) + "//" + ak.Spec.IssuerRef.Name
	for _, f := range families {
		if f.GetName() != "exokey_drift_corrections_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["issuer"] == issuer && labels["kind"] == kind {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
