package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// Revoking on evidence. envtest runs no Deployment controller: the test
// plays it, writing the Deployment's status as the controller would once
// its rollout completes. The end-to-end suite runs the real one.
var _ = Describe("A replaced key with consumers", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })
	api := iamv1beta1.IssuerAPIIAMv3

	// rotated makes an AccessKey consumed by the Deployment "api" (two
	// replicas), replaces its key, and returns it with the old key's
	// credentials.
	rotated := func(rotation *iamv1beta1.RotationSpec) (*iamv1beta1.AccessKey, string, string) {
		d := deployment(namespace, "api", "consumed")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			d.Spec.Replicas = ptr.To[int32](2)
			return k8sClient.Update(ctx, d)
		})).To(Succeed())
		ak := waitReady(newAccessKey(namespace, "consumed", api, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.RestartTargets = []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: "api"}}
			ak.Spec.Rotation = rotation
		}))
		old := secretOf(ak)
		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-object"} })
		Eventually(func() []iamv1beta1.RetiringKey { return fetch(ak).Status.Retiring }, timeout, poll).Should(HaveLen(1))
		return ak, string(old.Data["EXOSCALE_API_KEY"]), string(old.Data["EXOSCALE_API_SECRET"])
	}
	// rolloutCompletes writes the status the Deployment controller writes
	// once every replica runs the rolled template.
	rolloutCompletes := func(name string, ak *iamv1beta1.AccessKey) {
		// The roll is made within the batch window: the controller sees it first.
		rolledTo := fetch(ak).Status.Retiring[0].Consumers[0].Generation
		Eventually(func() int64 {
			d := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d)).To(Succeed())
			return d.Generation
		}, timeout, poll).Should(BeNumerically(">=", rolledTo))
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d)).To(Succeed())
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
			return k8sClient.Status().Update(ctx, d)
		})).To(Succeed())
	}

	It("is revoked once the consumer has rolled, not at its grace period, and status says what it waits for", func() {
		ak, oldKey, oldSecret := rotated(&iamv1beta1.RotationSpec{GracePeriodSeconds: iamv1beta1.SecondsOf(time.Hour)})
		retiring := fetch(ak).Status.Retiring[0]
		Expect(retiring.Consumers).To(ConsistOf(HaveField("Name", "api")))
		Eventually(func() string { return fetch(ak).Status.Retiring[0].WaitingFor }, timeout, poll).
			Should(Equal("Deployment api: the roll is not yet observed"))
		Consistently(func() bool { return authenticates(oldKey, oldSecret) }, 2*time.Second, poll).Should(BeTrue(), "the rollout has not finished")

		rolloutCompletes("api", ak)
		Eventually(func() bool { return authenticates(oldKey, oldSecret) }, timeout, poll).Should(BeFalse(), "revoked on the evidence")
		Eventually(func() []iamv1beta1.RetiringKey { return fetch(ak).Status.Retiring }, timeout, poll).Should(BeEmpty())
		Expect(eventsOf(ak, EventKeyRevoked)).To(ContainSubstring("once every consumer had rolled onto its successor"))
	})

	It("waits out minGracePeriod even when the consumer has rolled", func() {
		ak, oldKey, oldSecret := rotated(&iamv1beta1.RotationSpec{GracePeriodSeconds: iamv1beta1.SecondsOf(time.Hour),
			MinGracePeriodSeconds: ptr.To(iamv1beta1.SecondsOf(30 * time.Minute))})
		rolloutCompletes("api", ak)
		Consistently(func() bool { return authenticates(oldKey, oldSecret) }, 2*time.Second, poll).Should(BeTrue(), "minGracePeriod holds it")
		testClock.advance(31 * time.Minute)
		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Annotations = map[string]string{"look": "again"} })
		Eventually(func() bool { return authenticates(oldKey, oldSecret) }, timeout, poll).Should(BeFalse())
	})

	It("is revoked at its grace period with a Warning naming the consumer that had not finished", func() {
		ak, oldKey, oldSecret := rotated(&iamv1beta1.RotationSpec{GracePeriodSeconds: iamv1beta1.SecondsOf(time.Hour)})
		before := counter("exokey_revocations_forced_total", "", "")
		testClock.advance(61 * time.Minute)
		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Annotations = map[string]string{"look": "again"} })
		Eventually(func() bool { return authenticates(oldKey, oldSecret) }, timeout, poll).Should(BeFalse())
		Eventually(func() string { return eventsOf(ak, EventKeyRevokedBeforeRollout) }, timeout, poll).
			Should(ContainSubstring("Deployment api: the roll is not yet observed"))
		Expect(counter("exokey_revocations_forced_total", "", "")).To(Equal(before + 1))
	})
})

var _ = Describe("A workload consuming several AccessKeys", func() {
	It("is rolled once when they are rotated together", func() {
		namespace := newNamespace(nil)
		names := []string{"alpha", "beta", "gamma"}
		d := deploymentConsuming(namespace, "api", names[0])
		for _, name := range names[1:] {
			d.Spec.Template.Spec.Containers[0].EnvFrom = append(d.Spec.Template.Spec.Containers[0].EnvFrom,
				corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
		}
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		var aks []*iamv1beta1.AccessKey
		for _, name := range names {
			aks = append(aks, waitReady(newAccessKey(namespace, name, iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
				ak.Spec.RestartTargets = []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: "api"}}
			})))
		}
		generation := func() int64 {
			got := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), got)).To(Succeed())
			return got.Generation
		}
		// The first keys' rolls settle (within the batch window).
		Eventually(generation, timeout, poll).Should(BeNumerically(">", 1))
		Consistently(generation, 2*time.Second, poll).Should(Equal(generation()))
		before := generation()

		olds := map[string]string{}
		for _, ak := range aks {
			olds[ak.Name] = fetch(ak).Status.KeyID
			edit(ak, func(ak *iamv1beta1.AccessKey) {
				ak.Annotations = map[string]string{iamv1beta1.RotateAnnotation: "together"}
			})
		}
		for _, ak := range aks {
			Eventually(func() string { return fetch(ak).Status.KeyID }, timeout, poll).ShouldNot(Equal(olds[ak.Name]))
		}
		Eventually(generation, timeout, poll).Should(Equal(before + 1))
		Consistently(generation, 2*time.Second, poll).Should(Equal(before+1), "one roll for three rotations")
		Eventually(func() []string { return eventMessages(namespace, "Restarted") }, timeout, poll).
			Should(ContainElement("rolled onto the new keys of AccessKeys alpha, beta, gamma"), "one roll, for the three")
	})
})

// eventMessages returns the messages of a namespace's events of a reason.
func eventMessages(namespace, reason string) []string {
	events := &corev1.EventList{}
	Expect(k8sClient.List(ctx, events, client.InNamespace(namespace))).To(Succeed())
	var messages []string
	for _, e := range events.Items {
		if e.Reason == reason {
			messages = append(messages, e.Message)
		}
	}
	return messages
}

var _ = Describe("A consumer named in forged status", func() {
	It("is not rolled unless its pods consume the AccessKey's Secret", func() {
		namespace := newNamespace(nil)
		bystander := newDeployment(namespace, "bystander", func(*corev1.PodTemplateSpec) {}) // reads no Secret of exokey's
		ak := waitReady(newAccessKey(namespace, "forger", iamv1beta1.IssuerAPIIAMv3))
		generation := func() int64 {
			d := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(bystander), d)).To(Succeed())
			return d.Generation
		}
		before := generation()
		// As a tenant who may write status would, where the status policy is not installed.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got := fetch(ak)
			got.Status.Retiring = append(got.Status.Retiring, iamv1beta1.RetiringKey{
				KeyID: "EXOforged", RevokeAt: ptr.To(metav1.NewTime(testClock.Now().Add(time.Hour))), Issuer: got.Status.Issuer,
				Consumers: []iamv1beta1.RolledConsumer{{Kind: "Deployment", Name: "bystander", Generation: before + 5}},
			})
			return k8sClient.Status().Update(ctx, got)
		})).To(Succeed())
		Consistently(generation, 4*time.Second, poll).Should(Equal(before), "the bystander is not rolled")
	})
})
