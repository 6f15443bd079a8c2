//go:build e2e

package e2e

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
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
