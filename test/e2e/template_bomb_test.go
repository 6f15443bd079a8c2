//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// cpuSeconds is the CPU time a process has used, from /proc/PID/stat
// (utime and stime, in clock ticks of 1/100 s on Linux).
func cpuSeconds(pid int) float64 {
	GinkgoHelper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	Expect(err).NotTo(HaveOccurred())
	// The command name may hold spaces: fields count from after its ')'.
	fields := strings.Fields(string(raw)[strings.LastIndexByte(string(raw), ')')+2:])
	utime, err := strconv.ParseFloat(fields[11], 64)
	Expect(err).NotTo(HaveOccurred())
	stime, err := strconv.ParseFloat(fields[12], 64)
	Expect(err).NotTo(HaveOccurred())
	return (utime + stime) / 100
}

// A tenant's template bombs, against the manager process: refused unrun, the
// manager idle meanwhile, another team served.
var _ = Describe("Template bombs", Ordered, func() {
	var m *manager
	BeforeAll(func() { m = startManager("manager-template-bombs") })
	AfterAll(func() { m.kill() })

	It("cost the manager nothing while they exist, and another team's AccessKey is Ready", func() {
		applyTemplateBombs(newNamespace(), m)

		By("measuring the manager's CPU while the bombs exist")
		const window = 10 * time.Second
		before, started := cpuSeconds(m.cmd.Process.Pid), time.Now()
		neighbour := newAccessKey(newNamespace(), "neighbour")
		Eventually(func() bool { return ready(neighbour) }, timeout, poll).Should(BeTrue(), "another team's AccessKey")
		readyAfter := time.Since(started)
		time.Sleep(window - min(readyAfter, window))
		cores := (cpuSeconds(m.cmd.Process.Pid) - before) / time.Since(started).Seconds()
		AddReportEntry("manager CPU with three template bombs applied", fmt.Sprintf("%.3f cores over %s; another team's AccessKey Ready in %s",
			cores, time.Since(started).Round(time.Second), readyAfter.Round(100*time.Millisecond)))
		// Before the step budget, a range over an integer alone held 1.4 to
		// 1.9 cores of two for as long as it existed.
		Expect(cores).To(BeNumerically("<", 0.25), "the bombs are refused unrun")
	})
})

// applyTemplateBombs creates three AccessKeys whose templates would run
// without end or grow without bound, and waits for each to be refused
// (Stalled, InvalidSpec).
func applyTemplateBombs(namespace string, m *manager) {
	GinkgoHelper()
	annotations := map[string]string{}
	for i := range 300 {
		annotations[fmt.Sprintf("tenant.example/a%d", i)] = strings.Repeat("x", 100)
	}
	bombs := map[string]string{
		"range-integer":     `{{range 9000000000000000000}}{{end}}`,
		"range-annotations": `{{range .Annotations}}` + strings.Repeat(`{{if eq (printf "%s%s" . .) ""}}{{end}}`, 90) + `{{end}}`,
		"escapers":          strings.Repeat(`{{if js (printf "%s%s%s" $.Annotations "" "")}}{{end}}`, 60),
	}
	for name, template := range bombs {
		ak := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: annotations},
			Spec: iamv1beta1.AccessKeySpec{IssuerRef: iamv1beta1.IssuerReference{Name: "exoscale"},
				Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:e2e"},
				Secret: iamv1beta1.SecretSpec{Format: iamv1beta1.SecretFormatTemplate,
					Template: iamv1beta1.SecretTemplate{Data: map[string]string{"value": template}}}}}
		Expect(k8sClient.Create(ctx, ak)).To(Succeed())
		Eventually(func() string {
			got := &iamv1beta1.AccessKey{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got); err != nil {
				return err.Error()
			}
			for _, c := range got.Status.Conditions {
				if c.Type == "Stalled" && c.Status == metav1.ConditionTrue {
					return c.Reason
				}
			}
			return "not stalled"
		}, timeout, poll).Should(Equal("InvalidSpec"), "%s: %s", name, describe(m))
	}
}
