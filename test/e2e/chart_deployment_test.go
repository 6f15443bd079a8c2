//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// chartDeployment renders the chart's controllers' Deployment with extra
// helm flags.
func chartDeployment(args ...string) *appsv1.Deployment {
	GinkgoHelper()
	return renderedDeployment("templates/deployment.yaml", args...)
}

// renderedDeployment renders the first Deployment of a chart template.
func renderedDeployment(template string, args ...string) *appsv1.Deployment {
	GinkgoHelper()
	for _, obj := range renderChart(append([]string{"--show-only", template}, args...)...) {
		if obj.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, d)).To(Succeed())
		return d
	}
	Fail(template + " renders no Deployment")
	return nil
}

// selects reports whether a Deployment's selector matches a pod template's labels.
func selects(d *appsv1.Deployment, labels map[string]string) bool {
	GinkgoHelper()
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	Expect(err).NotTo(HaveOccurred())
	return selector.Matches(k8slabels.Set(labels))
}

var _ = Describe("The chart's Deployment", func() {
	It("spreads its replicas, lets a pass finish on shutdown, and is valid to the API server", func() {
		d := chartDeployment()
		Expect(k8sClient.Create(ctx, d, client.DryRunAll)).To(Succeed(), "server-side dry run")
		pod := d.Spec.Template.Spec
		Expect(*d.Spec.Replicas).To(BeNumerically(">=", 2))
		Expect(pod.Affinity).NotTo(BeNil())
		terms := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		Expect(terms).To(HaveLen(1))
		Expect(terms[0].PodAffinityTerm.TopologyKey).To(Equal("kubernetes.io/hostname"))
		Expect(terms[0].PodAffinityTerm.LabelSelector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels), "the term selects the replicas")
		Expect(pod.TopologySpreadConstraints).To(ConsistOf(HaveField("TopologyKey", "topology.kubernetes.io/zone")))
		var shutdown time.Duration
		for _, arg := range pod.Containers[0].Args {
			if v, ok := strings.CutPrefix(arg, "--graceful-shutdown-timeout="); ok {
				var err error
				shutdown, err = time.ParseDuration(v)
				Expect(err).NotTo(HaveOccurred())
			}
		}
		Expect(shutdown).To(BeNumerically(">=", 2*time.Minute), "a pass (at most --reconcile-timeout, 2m) finishes")
		Expect(time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second).To(BeNumerically(">", shutdown))

		plain := chartDeployment("--set", "spreadReplicas=false").Spec.Template.Spec
		Expect(plain.Affinity).To(BeNil())
		Expect(plain.TopologySpreadConstraints).To(BeEmpty())
	})

	It("runs the webhook in a Deployment of its own, under its own ServiceAccount, spread, and the Service reaches it alone", func() {
		controllers, webhook := chartDeployment(), renderedDeployment("templates/webhook-deployment.yaml")
		Expect(k8sClient.Create(ctx, webhook, client.DryRunAll)).To(Succeed(), "server-side dry run")
		Expect(*webhook.Spec.Replicas).To(BeNumerically(">=", 2))
		Expect(webhook.Spec.Template.Spec.ServiceAccountName).To(Equal(webhookServiceAccount))
		Expect(controllers.Spec.Template.Spec.ServiceAccountName).To(Equal(serviceAccount))
		Expect(webhook.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--mode=webhook"))
		Expect(controllers.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--mode=controllers"))
		Expect(selects(controllers, webhook.Spec.Template.Labels)).To(BeFalse(), "the controllers' selector takes webhook pods")
		Expect(selects(webhook, controllers.Spec.Template.Labels)).To(BeFalse(), "the webhook's selector takes controller pods")
		terms := webhook.Spec.Template.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		Expect(terms[0].PodAffinityTerm.LabelSelector.MatchLabels).To(Equal(webhook.Spec.Selector.MatchLabels))
		for _, obj := range renderChart("--show-only", "templates/webhook.yaml") {
			switch obj.GetKind() {
			case "Service":
				service := &corev1.Service{}
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, service)).To(Succeed())
				Expect(service.Spec.Selector).To(Equal(webhook.Spec.Selector.MatchLabels))
			case "PodDisruptionBudget":
				Expect(obj.Object).To(HaveKeyWithValue("spec", HaveKeyWithValue("selector",
					HaveKeyWithValue("matchLabels", BeEquivalentTo(toAny(webhook.Spec.Selector.MatchLabels))))))
			}
		}
	})
})

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

var _ = Describe("The chart's NetworkPolicy", func() {
	It("admits the API server alone to the webhook's port, and is valid to the API server", func() {
		objects := renderChart("--show-only", "templates/networkpolicy.yaml", "--set", "networkPolicy.enabled=true",
			"--set-json", `networkPolicy.apiServer=[{"ipBlock":{"cidr":"10.0.0.10/32"}}]`)
		Expect(objects).To(HaveLen(2), "one for the controllers' pods, one for the webhook's")
		policies := map[string]*networkingv1.NetworkPolicy{}
		for _, obj := range objects {
			policy := &networkingv1.NetworkPolicy{}
			Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, policy)).To(Succeed())
			Expect(k8sClient.Create(ctx, policy, client.DryRunAll)).To(Succeed(), "server-side dry run")
			policies[policy.Name] = policy
		}
		controllers, webhook := policies["exokey"], policies["exokey-webhook"]
		Expect(controllers.Spec.PodSelector.MatchLabels).To(Equal(chartDeployment().Spec.Selector.MatchLabels))
		Expect(controllers.Spec.Ingress).To(HaveLen(1), "the metrics port alone")
		Expect(controllers.Spec.Ingress[0].Ports[0].Port.IntValue()).To(Equal(8443))
		Expect(webhook.Spec.PodSelector.MatchLabels).To(Equal(renderedDeployment("templates/webhook-deployment.yaml").Spec.Selector.MatchLabels))
		Expect(webhook.Spec.Ingress[0].Ports[0].Port.IntValue()).To(Equal(9443))
		Expect(webhook.Spec.Ingress[0].From).To(ConsistOf(HaveField("IPBlock.CIDR", "10.0.0.10/32")))

		_, err := exec.Command(filepath.Join(root, "bin", "helm"), "template", "exokey", filepath.Join(root, "dist", "chart"),
			"--kube-version", os.Getenv("K8S_VERSION"), "--set", "networkPolicy.enabled=true").CombinedOutput()
		Expect(err).To(HaveOccurred(), "enabled without the API server's addresses is refused")
	})
})
