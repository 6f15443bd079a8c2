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
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// chartDeployment renders the chart's Deployment with extra helm flags.
func chartDeployment(args ...string) *appsv1.Deployment {
	GinkgoHelper()
	for _, obj := range renderChart(append([]string{"--show-only", "templates/deployment.yaml"}, args...)...) {
		d := &appsv1.Deployment{}
		Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, d)).To(Succeed())
		return d
	}
	Fail("the chart renders no Deployment")
	return nil
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
})

var _ = Describe("The chart's NetworkPolicy", func() {
	It("admits the API server alone to the webhook's port, and is valid to the API server", func() {
		objects := renderChart("--show-only", "templates/networkpolicy.yaml", "--set", "networkPolicy.enabled=true",
			"--set-json", `networkPolicy.apiServer=[{"ipBlock":{"cidr":"10.0.0.10/32"}}]`)
		Expect(objects).To(HaveLen(1))
		policy := &networkingv1.NetworkPolicy{}
		Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(objects[0].Object, policy)).To(Succeed())
		Expect(k8sClient.Create(ctx, policy, client.DryRunAll)).To(Succeed(), "server-side dry run")
		webhook := policy.Spec.Ingress[0]
		Expect(webhook.Ports[0].Port.IntValue()).To(Equal(9443))
		Expect(webhook.From).To(ConsistOf(HaveField("IPBlock.CIDR", "10.0.0.10/32")))
		Expect(policy.Spec.PodSelector.MatchLabels).To(Equal(chartDeployment().Spec.Selector.MatchLabels))

		_, err := exec.Command(filepath.Join(root, "bin", "helm"), "template", "exokey", filepath.Join(root, "dist", "chart"),
			"--kube-version", os.Getenv("K8S_VERSION"), "--set", "networkPolicy.enabled=true").CombinedOutput()
		Expect(err).To(HaveOccurred(), "enabled without the API server's addresses is refused")
	})
})
