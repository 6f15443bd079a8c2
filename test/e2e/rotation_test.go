//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
)

// Rotation against kube-controller-manager's Deployment and ReplicaSet
// controllers. Nothing runs pods here, so the test plays the kubelet: it
// marks each pod Ready a few seconds after it is created, and keeps the
// log of which key each pod started with (the Secret's checksum its
// template carries) and when each went.
var _ = Describe("Rotation that waits for its consumers", Ordered, func() {
	var m *manager
	BeforeAll(func() { m = startManager("manager-rotation") })
	AfterAll(func() { m.kill() })

	// consumed creates a Deployment of replicas pods reading the Secret of
	// AccessKey name through envFrom (maxSurge 1, maxUnavailable 0), then
	// the AccessKey restarting it, and waits for every pod to run its key.
	consumed := func(namespace, name string, replicas int32, grace time.Duration, kubelet *kubelet) (*iamv1beta1.AccessKey, *appsv1.Deployment) {
		GinkgoHelper()
		labels := map[string]string{"app": name}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(replicas),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
						EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}}}},
				},
			},
		}
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		ak := &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: iamv1beta1.AccessKeySpec{
				IssuerRef: iamv1beta1.IssuerReference{Name: "exoscale"}, Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:e2e"},
				RestartTargets: []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: name}},
				Rotation:       &iamv1beta1.RotationSpec{GracePeriodSeconds: iamv1beta1.SecondsOf(grace)},
			},
		}
		Expect(k8sClient.Create(ctx, ak)).To(Succeed())
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(m))
		checksum := secretOf(ak).Annotations[iamv1beta1.ChecksumAnnotation]
		Eventually(func() int { return kubelet.running(checksum) }, 2*timeout, poll).Should(Equal(int(replicas)), "every pod runs the first key")
		Eventually(func() bool { return deploymentDone(d) }, timeout, poll).Should(BeTrue())
		return ak, d
	}
	rotate := func(ak *iamv1beta1.AccessKey) {
		GinkgoHelper()
		Expect(k8sClient.Patch(ctx, ak, client.RawPatch("application/merge-patch+json",
			[]byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, iamv1beta1.RotateAnnotation, time.Now().String()))))).To(Succeed())
	}

	It("revokes the old key within seconds of the last pod that started with it, not at gracePeriod", func() {
		namespace := newNamespace()
		kubelet := startKubelet(namespace, 3*time.Second)
		DeferCleanup(kubelet.stop)
		ak, _ := consumed(namespace, "web", 5, 10*time.Minute, kubelet)
		old := secretOf(ak)
		oldChecksum := old.Annotations[iamv1beta1.ChecksumAnnotation]

		rotated := time.Now()
		rotate(ak)
		oldKey := string(old.Data["EXOSCALE_API_KEY"])
		var revoked time.Time
		Eventually(func() bool {
			if liveKeys(namespace)[oldKey] {
				return false
			}
			revoked = time.Now()
			return true
		}, 3*timeout, 100*time.Millisecond).Should(BeTrue(), "the old key is revoked: %s", describe(m))
		left := kubelet.running(oldChecksum)
		lastOldGone := kubelet.lastGone(oldChecksum)
		Expect(left).To(BeZero(), "a pod that started with the old key still runs at its revocation")
		Expect(lastOldGone).NotTo(BeZero())
		Expect(revoked.Sub(lastOldGone)).To(BeNumerically("<", time.Minute), "revoked on the evidence, not at gracePeriod (10m)")
		Expect(eventsNamed(ak, controller.EventKeyRevoked)).To(ContainElement(ContainSubstring("once every consumer had rolled")))
		AddReportEntry("rotation with 5 replicas", fmt.Sprintf("old key revoked %s after the rotation, %s after the last pod that started with it went; gracePeriod 10m",
			revoked.Sub(rotated).Round(100*time.Millisecond), revoked.Sub(lastOldGone).Round(100*time.Millisecond)))
	})

	It("rolls a workload that consumes three AccessKeys rotated together once", func() {
		namespace := newNamespace()
		kubelet := startKubelet(namespace, time.Second)
		DeferCleanup(kubelet.stop)
		ak, d := consumed(namespace, "alpha", 2, 10*time.Minute, kubelet)
		aks := []*iamv1beta1.AccessKey{ak}
		for _, name := range []string{"beta", "gamma"} {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
				d.Spec.Template.Spec.Containers[0].EnvFrom = append(d.Spec.Template.Spec.Containers[0].EnvFrom,
					corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
				return k8sClient.Update(ctx, d)
			})).To(Succeed())
			other := &iamv1beta1.AccessKey{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
				Spec: iamv1beta1.AccessKeySpec{
					IssuerRef: iamv1beta1.IssuerReference{Name: "exoscale"}, Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:e2e"},
					RestartTargets: []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: "alpha"}},
					Rotation:       &iamv1beta1.RotationSpec{GracePeriodSeconds: iamv1beta1.SecondsOf(10 * time.Minute)},
				},
			}
			Expect(k8sClient.Create(ctx, other)).To(Succeed())
			aks = append(aks, other)
		}
		for _, ak := range aks {
			Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(m))
		}
		Eventually(func() bool { return deploymentDone(d) }, 2*timeout, poll).Should(BeTrue())
		replicaSets := func() int {
			list := &appsv1.ReplicaSetList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(namespace))).To(Succeed())
			return len(list.Items)
		}
		Eventually(func(g Gomega) { // the first keys' rolls, and the template's edits, have settled
			n := replicaSets()
			g.Consistently(replicaSets, 7*time.Second, poll).Should(Equal(n))
		}, 3*timeout, poll).Should(Succeed())
		Eventually(func() bool { return deploymentDone(d) }, 2*timeout, poll).Should(BeTrue())
		before := replicaSets()

		olds := map[string]bool{}
		for _, ak := range aks {
			olds[string(secretOf(ak).Data["EXOSCALE_API_KEY"])] = true
			rotate(ak)
		}
		Eventually(func() bool {
			live := liveKeys(namespace)
			for k := range olds {
				if live[k] {
					return false
				}
			}
			return true
		}, 3*timeout, poll).Should(BeTrue(), "the three old keys are revoked once the one roll is done: %s", describe(m))
		Expect(replicaSets()).To(Equal(before+1), "one new ReplicaSet: one roll for three rotations")
		AddReportEntry("three AccessKeys rotated together", fmt.Sprintf("the Deployment consuming them rolled once (%d ReplicaSets before, %d after)", before, replicaSets()))
	})

	It("revokes the old key at gracePeriod with a Warning when the rollout never completes", func() {
		namespace := newNamespace()
		kubelet := startKubelet(namespace, 2*time.Second)
		DeferCleanup(kubelet.stop)
		const grace = 20 * time.Second
		ak, _ := consumed(namespace, "stuck", 2, grace, kubelet)
		old := secretOf(ak)
		kubelet.stop() // new pods never become ready: the rollout never completes
		rotated := time.Now()
		rotate(ak)
		Eventually(func() string {
			got := &iamv1beta1.AccessKey{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got)).To(Succeed())
			if len(got.Status.Retiring) == 0 {
				return ""
			}
			return got.Status.Retiring[0].WaitingFor
		}, timeout, poll).Should(ContainSubstring("Deployment stuck:"), "status says what it waits for")
		oldKey := string(old.Data["EXOSCALE_API_KEY"])
		Consistently(func() bool { return liveKeys(namespace)[oldKey] }, grace/2, time.Second).Should(BeTrue(), "kept while the rollout runs")
		Eventually(func() bool { return liveKeys(namespace)[oldKey] }, grace+timeout, 200*time.Millisecond).Should(BeFalse())
		revoked := time.Since(rotated)
		Expect(revoked).To(BeNumerically(">=", grace-time.Second))
		Eventually(func() []string { return eventsNamed(ak, controller.EventKeyRevokedBeforeRollout) }, timeout, poll).
			Should(ContainElement(ContainSubstring("Deployment stuck")))
		AddReportEntry("rollout that never completes", fmt.Sprintf("old key revoked %s after the rotation (gracePeriod %s), with a Warning naming the Deployment",
			revoked.Round(100*time.Millisecond), grace))
	})
})

// deploymentDone reports whether a Deployment's rollout has completed.
func deploymentDone(d *appsv1.Deployment) bool {
	got := &appsv1.Deployment{}
	if k8sClient.Get(ctx, client.ObjectKeyFromObject(d), got) != nil {
		return false
	}
	want := ptr.Deref(got.Spec.Replicas, 1)
	s := got.Status
	return s.ObservedGeneration >= got.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

// eventsNamed returns the messages of an AccessKey's events of a reason.
func eventsNamed(ak *iamv1beta1.AccessKey, reason string) []string {
	events := &corev1.EventList{}
	Expect(k8sClient.List(ctx, events, client.InNamespace(ak.Namespace))).To(Succeed())
	var messages []string
	for _, e := range events.Items {
		if e.Reason == reason && e.InvolvedObject.Name == ak.Name {
			messages = append(messages, e.Message)
		}
	}
	return messages
}

// kubelet plays the kubelet for the pods of one namespace: each pod is
// marked Running and Ready after a delay, and it logs, by the checksum of
// the Secret each pod's template carries (which key it started with), the
// pods running and when the last of them went.
type kubelet struct {
	namespace string
	delay     time.Duration
	cancel    context.CancelFunc
	done      chan struct{}

	mu   sync.Mutex
	pods map[string]string    // pod name: checksum, of the pods it runs
	gone map[string]time.Time // checksum: when its last pod went
}

func startKubelet(namespace string, delay time.Duration) *kubelet {
	runCtx, cancel := context.WithCancel(ctx)
	k := &kubelet{namespace: namespace, delay: delay, cancel: cancel, done: make(chan struct{}),
		pods: map[string]string{}, gone: map[string]time.Time{}}
	go func() {
		defer close(k.done)
		for runCtx.Err() == nil {
			k.tick(runCtx)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return k
}

func (k *kubelet) stop() {
	k.cancel()
	<-k.done
}

func (k *kubelet) tick(ctx context.Context) {
	pods := &corev1.PodList{}
	if k8sClient.List(ctx, pods, client.InNamespace(k.namespace)) != nil {
		return
	}
	seen := map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		seen[pod.Name] = pod.DeletionTimestamp.IsZero()
		if !pod.DeletionTimestamp.IsZero() || podReady(pod) || time.Since(pod.CreationTimestamp.Time) < k.delay {
			continue
		}
		now := metav1.Now()
		pod.Status.Phase, pod.Status.StartTime = corev1.PodRunning, &now
		pod.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		if k8sClient.Status().Update(ctx, pod) == nil {
			k.mu.Lock()
			k.pods[pod.Name] = pod.Annotations[controller.RestartAnnotation]
			k.mu.Unlock()
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, checksum := range k.pods {
		if !seen[name] {
			delete(k.pods, name)
			k.gone[checksum] = time.Now()
		}
	}
}

// running counts the pods running that started with the key of checksum.
func (k *kubelet) running(checksum string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.pods {
		if c == checksum {
			n++
		}
	}
	return n
}

// lastGone is when the last pod that started with the key of checksum went.
func (k *kubelet) lastGone(checksum string) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gone[checksum]
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Argo Rollouts: its CRD from the upstream manifest, a Rollout restarted
// through spec.restartAt, and the test playing Argo's controller.
var _ = Describe("An Argo Rollout as a restart target", Ordered, func() {
	var m *manager
	BeforeAll(func() {
		crd := &unstructured.Unstructured{}
		raw, err := os.ReadFile(filepath.Join(root, "test", "e2e", "testdata", "argo-rollouts", "rollout-crd.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(yaml.Unmarshal(raw, &crd.Object)).To(Succeed())
		Expect(k8sClient.Create(ctx, crd)).To(Succeed())
		Eventually(func() error {
			return k8sClient.List(ctx, &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "RolloutList"}})
		}, timeout, poll).Should(Succeed())
		m = startManager("manager-argo-rollouts")
	})
	AfterAll(func() { m.kill() })

	It("is restarted through spec.restartAt, and the old key waits for it", func() {
		namespace := newNamespace()
		rollout := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
			"metadata": map[string]any{"name": "api", "namespace": namespace},
			"spec": map[string]any{
				"replicas": int64(2),
				"selector": map[string]any{"matchLabels": map[string]any{"app": "api"}},
				"strategy": map[string]any{"canary": map[string]any{}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "api"}},
					"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app:1",
						"envFrom": []any{map[string]any{"secretRef": map[string]any{"name": "api"}}}}}},
				},
			},
		}}
		Expect(k8sClient.Create(ctx, rollout)).To(Succeed())
		ak := &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: namespace},
			Spec: iamv1beta1.AccessKeySpec{
				IssuerRef: iamv1beta1.IssuerReference{Name: "exoscale"}, Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:e2e"},
				RestartTargets: []iamv1beta1.RestartTarget{{Kind: "Rollout", Name: "api"}},
				Rotation:       &iamv1beta1.RotationSpec{GracePeriodSeconds: iamv1beta1.SecondsOf(10 * time.Minute)},
			},
		}
		Expect(k8sClient.Create(ctx, ak)).To(Succeed())
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(m))
		restartAt := func() string {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rollout), rollout)).To(Succeed())
			at, _, _ := unstructured.NestedString(rollout.Object, "spec", "restartAt")
			return at
		}
		Eventually(restartAt, timeout, poll).ShouldNot(BeEmpty(), "the first key restarts the Rollout")
		first := restartAt()
		oldKey := string(secretOf(ak).Data["EXOSCALE_API_KEY"])

		time.Sleep(time.Second) // restartAt has a resolution of a second
		Expect(k8sClient.Patch(ctx, ak, client.RawPatch("application/merge-patch+json",
			[]byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"again"}}}`, iamv1beta1.RotateAnnotation))))).To(Succeed())
		Eventually(restartAt, timeout, poll).ShouldNot(Equal(first), "the new key restarts it again")
		Consistently(func() bool { return liveKeys(namespace)[oldKey] }, 2*time.Second, poll).Should(BeTrue(), "the old key waits for the restart")

		By("playing Argo's controller: every pod restarted, the Rollout healthy")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rollout), rollout)).To(Succeed())
		status := map[string]any{"observedGeneration": fmt.Sprint(rollout.GetGeneration()), "restartedAt": restartAt(), "phase": "Healthy",
			"replicas": int64(2), "updatedReplicas": int64(2), "readyReplicas": int64(2), "availableReplicas": int64(2)}
		Expect(unstructured.SetNestedMap(rollout.Object, status, "status")).To(Succeed())
		Expect(k8sClient.Status().Update(ctx, rollout)).To(Succeed())
		Eventually(func() bool { return liveKeys(namespace)[oldKey] }, timeout, poll).Should(BeFalse(), "revoked once the Rollout restarted: %s", describe(m))
		Expect(eventsNamed(ak, controller.EventKeyRevoked)).To(ContainElement(ContainSubstring("once every consumer had rolled")))
	})

	It("refuses a restart target of a kind exokey cannot roll, naming the kinds it can", func() {
		ak := &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: "cron", Namespace: newNamespace()},
			Spec: iamv1beta1.AccessKeySpec{
				IssuerRef: iamv1beta1.IssuerReference{Name: "exoscale"}, Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:e2e"},
				RestartTargets: []iamv1beta1.RestartTarget{{Kind: "CronJob", Name: "nightly"}},
			},
		}
		err := k8sClient.Create(ctx, ak)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`supported values: "Deployment", "StatefulSet", "DaemonSet", "Rollout"`))
	})
})
