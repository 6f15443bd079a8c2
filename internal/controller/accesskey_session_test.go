package controller

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
)

// Session credentials on the emulator, in real time with TTLs of seconds:
// the emulator expires them by its own clock.

// sessionKey is an AccessKey with session credentials of ttl on the IAMv3 issuer.
func sessionKey(namespace, name string, ttl time.Duration, mutate ...func(*iamv1beta1.AccessKey)) *iamv1beta1.AccessKey {
	return newAccessKey(namespace, name, iamv1beta1.IssuerAPIIAMv3, append([]func(*iamv1beta1.AccessKey){func(ak *iamv1beta1.AccessKey) {
		ak.Spec.TTLSeconds = iamv1beta1.SecondsOf(ttl)
	}}, mutate...)...)
}

// rolesOf lists the roles at the emulator minted for an AccessKey, with or without keys.
func rolesOf(ak *iamv1beta1.AccessKey) []string {
	found, err := rootKeys[iamv1beta1.IssuerAPIIAMv3].FindByLabels(ctx, map[string]string{LabelUID: string(fetchUID(ak))})
	Expect(err).NotTo(HaveOccurred())
	var roles []string
	for _, k := range found {
		roles = append(roles, k.RoleID)
	}
	return roles
}

func fetchUID(ak *iamv1beta1.AccessKey) string {
	if ak.UID != "" {
		return string(ak.UID)
	}
	return string(fetch(ak).UID)
}

var _ = Describe("Session credentials (spec.ttl)", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })

	It("publishes a session credential that works, renews it before it expires, and the old one expires", func() {
		tampered, renewals := counter("exokey_rotations_total", "reason", RotationSecretTampered), counter("exokey_rotations_total", "reason", RotationRenewalDue)
		Expect(k8sClient.Create(ctx, deploymentConsuming(namespace, "app", "renewed"))).To(Succeed())
		ak := waitReady(sessionKey(namespace, "renewed", 4*time.Second, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.RestartTargets = []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: "app"}}
		}))
		Expect(ak.Status.RoleID).NotTo(BeEmpty())
		Expect(ak.Status.ExpiresAt).NotTo(BeNil())
		// Expiry is Exoscale's word (the emulator's clock, real time); the
		// renewal is the manager's (the test clock, which earlier specs may
		// have moved forward): due after two thirds of the ttl by each.
		Expect(ak.Status.ExpiresAt.Time).To(BeTemporally("~", time.Now().Add(4*time.Second), 1500*time.Millisecond))
		Expect(ak.Status.NextRotationAt.Time).To(BeTemporally("~", testClock.Now().Add(4*time.Second-4*time.Second/3), 1500*time.Millisecond))
		first := secretOf(ak)
		Expect(allowed(first, "get-sos-object", "backups")).To(BeTrue())
		Expect(allowed(first, "put-sos-object", "backups")).To(BeFalse())
		rolled := restartStamp(namespace, "app")

		renewed := waitReplaced(ak, ak.Status.KeyID)
		Expect(renewed.Status.RoleID).To(Equal(ak.Status.RoleID), "a renewal keeps the role")
		Expect(renewed.Status.Retiring).To(BeEmpty(), "a session credential is not revoked: it expires")
		second := secretOf(renewed)
		Expect(allowed(second, "get-sos-object", "backups")).To(BeTrue())
		Expect(restartStamp(namespace, "app")).NotTo(Equal(rolled), "the restart target rolls on each renewal")

		Eventually(func() bool {
			return authenticates(string(first.Data["EXOSCALE_API_KEY"]), string(first.Data["EXOSCALE_API_SECRET"]))
		}, 10*time.Second, poll).Should(BeFalse(), "the old credential stops working at its expiry")
		// The AccessKey keeps a working credential through several TTLs.
		Consistently(func() (bool, error) {
			s := secretOf(fetch(ak))
			return emulator.Authorize(ctx, endpoint, string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]),
				"get-sos-object", map[string]string{"bucket": "backups"})
		}, 6*time.Second, 500*time.Millisecond).Should(BeTrue())
		Expect(rolesOf(ak)).To(ConsistOf(ak.Status.RoleID), "one role, however many renewals")
		Expect(counter("exokey_rotations_total", "reason", RotationRenewalDue) - renewals).To(BeNumerically(">=", 2))
		Expect(counter("exokey_rotations_total", "reason", RotationSecretTampered)).To(Equal(tampered),
			"a renewal is never taken for a tampered Secret (a stale copy of the AccessKey)")
	})

	It("replaces the role when the restrictions change and deletes the old one after the grace period", func() {
		ak := waitReady(sessionKey(namespace, "narrowed", time.Minute))
		old := secretOf(ak)
		changed := waitReplaced(edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-object"} }), ak.Status.KeyID)
		Expect(changed.Status.RoleID).NotTo(Equal(ak.Status.RoleID))
		Expect(allowed(secretOf(changed), "list-sos-bucket", "backups")).To(BeFalse(), "the new role holds the new restrictions")
		Eventually(func() []string { return rolesOf(ak) }, 20*time.Second, poll).Should(ConsistOf(changed.Status.RoleID))
		Expect(authenticates(string(old.Data["EXOSCALE_API_KEY"]), string(old.Data["EXOSCALE_API_SECRET"]))).To(BeFalse(),
			"the old role's credential ends with the role, before its TTL")
	})

	It("replaces a role deleted behind its back, found by the drift check", func() {
		ak := waitReady(sessionKey(namespace, "drifted", time.Hour))
		Expect(rootKeys[iamv1beta1.IssuerAPIIAMv3].Revoke(ctx, exoscale.Key{RoleID: ak.Status.RoleID})).To(Succeed())
		replaced := waitReplaced(ak, ak.Status.KeyID)
		Expect(replaced.Status.RoleID).NotTo(Equal(ak.Status.RoleID))
		Expect(rolesOf(ak)).To(ConsistOf(replaced.Status.RoleID))
	})

	It("deletes the role with the AccessKey, and its credential stops working", func() {
		ak := waitReady(sessionKey(namespace, "deleted", time.Hour))
		s := secretOf(ak)
		Expect(rolesOf(ak)).To(HaveLen(1))
		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), &iamv1beta1.AccessKey{}) }, timeout, poll).
			ShouldNot(Succeed())
		Expect(rolesOf(ak)).To(BeEmpty())
		Expect(authenticates(string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]))).To(BeFalse())
	})

	It("refuses a ttl on an AccessKeyV2 issuer, saying why", func() {
		ak := newAccessKey(namespace, "legacy", iamv1beta1.IssuerAPIAccessKeyV2, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.TTLSeconds = iamv1beta1.SecondsOf(time.Hour)
		})
		Expect(waitRefused(ak, ReasonInvalidSpec)).To(ContainSubstring("spec.ttlSeconds asks for session credentials, which need IAM v3"))
		Expect(liveKeysOf(ak)).To(BeEmpty())
	})

	It("leaks no role when record, Secret and status writes fail around the mint", func() {
		faults.set(namespace, 0.4)
		DeferCleanup(func() { faults.set("", 0) })
		var aks []*iamv1beta1.AccessKey
		for i := range 8 {
			aks = append(aks, sessionKey(namespace, fmt.Sprintf("crash-%d", i), 3*time.Second, func(ak *iamv1beta1.AccessKey) {
				ak.Spec.Rotation.GracePeriodSeconds = iamv1beta1.SecondsOf(time.Second)
			}))
		}
		for i, ak := range aks {
			aks[i] = waitReadyWithin(ak, time.Minute)
		}
		// Renewals and one replacement of each role, under faults.
		for i, ak := range aks {
			aks[i] = edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = append(ak.Spec.Operations, "put-sos-object") })
		}
		for _, ak := range aks {
			Eventually(func() bool {
				got := fetch(ak)
				return got.Status.RestrictionHash == restrictionHash(got) && condition(got, ConditionReady) != nil &&
					condition(got, ConditionReady).Status == metav1.ConditionTrue
			}, time.Minute, poll).Should(BeTrue(), ak.Name)
		}
		secretFailures, statusFailures, recordFailures := faults.counts()
		Expect(secretFailures+statusFailures+recordFailures).To(BeNumerically(">", 5), "faults must have hit the writes")
		AddReportEntry("injected failures", fmt.Sprintf("Secret writes %d, status writes %d, pending-key records %d",
			secretFailures, statusFailures, recordFailures))
		faults.set("", 0)
		for _, ak := range aks {
			Eventually(func() []string { return rolesOf(ak) }, time.Minute, poll).Should(ConsistOf(fetch(ak).Status.RoleID), ak.Name)
			// A credential of 3 s may expire between the read and the call:
			// look until a fresh one is seen to work.
			Eventually(func() (bool, error) {
				s := secretOf(fetch(ak))
				return emulator.Authorize(ctx, endpoint, string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]),
					"put-sos-object", map[string]string{"bucket": "backups"})
			}, 20*time.Second, poll).Should(BeTrue(), "the published credential works and holds the latest restrictions")
		}
	})
})

// deploymentConsuming is a Deployment whose pods read the Secret.
func deploymentConsuming(namespace, name, secretName string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
					EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secretName}}}}}}},
			},
		},
	}
}

// restartStamp is the restart annotation of a Deployment's pod template.
func restartStamp(namespace, name string) string {
	d := &appsv1.Deployment{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d)).To(Succeed())
	return d.Spec.Template.Annotations[RestartAnnotation]
}
