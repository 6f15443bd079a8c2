//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// A leader that stops cleanly (a rollout, a node drain) releases its lease
// on the way out, so a standby leads at once, not a lease duration later.
var _ = Describe("A clean handover", func() {
	It("gives the lease to the standby at once when the leader is stopped", func() {
		const lease = 15 * time.Second
		leader := startManager("manager-handover-leader", "--leader-election-lease-duration="+lease.String())
		DeferCleanup(leader.kill)
		Eventually(func() string { return leader.logText() }, timeout, poll).Should(ContainSubstring("Successfully acquired lease"), describe(leader))
		standby := startManager("manager-handover-standby", "--leader-election-lease-duration="+lease.String())
		DeferCleanup(standby.kill)
		Eventually(func() string { return standby.logText() }, timeout, poll).Should(ContainSubstring("Attempting to acquire leader lease"))

		stopped := time.Now()
		leader.stop()
		Eventually(func() string { return standby.logText() }, timeout, 100*time.Millisecond).Should(ContainSubstring("Successfully acquired lease"))
		handover := time.Since(stopped)
		AddReportEntry("handover", fmt.Sprintf("the standby led %s after the leader was stopped (lease duration %s)", handover.Round(100*time.Millisecond), lease))
		Expect(handover).To(BeNumerically("<", lease), "the lease was released, not waited out: %s", describe(standby))
	})
})

// Two replicas with leader election, the leader killed (SIGKILL: no lease
// release) in the middle of a flood of AccessKeys. Short lease timings keep
// the takeover quick; the chart's defaults (15 s) bound it the same way.
var _ = Describe("Failover in a flood", Label("chaos"), func() {
	It("kills the leader mid-flood: every AccessKey Ready with one key, none leaked, and each per-key series from one replica", func() {
		size := sizeOfChaos().keys
		cloud := newCloud("failover")
		DeferCleanup(cloud.stop)
		cloud.issuer("failover")
		leaseFlags := []string{"--leader-election-lease-duration=4s", "--leader-election-renew-deadline=3s", "--leader-election-retry-period=1s"}
		type replica struct {
			*manager
			metrics string
		}
		var replicas []replica
		for _, name := range []string{"manager-failover-a", "manager-failover-b"} {
			metrics := freeAddress()
			m := startManager(name, append([]string{"--drift-check-period=1m", "--metrics-bind-address=" + metrics, "--metrics-secure=false"},
				leaseFlags...)...)
			DeferCleanup(m.kill)
			replicas = append(replicas, replica{m, metrics})
		}
		leader := func() int {
			for i, r := range replicas {
				if r.cmd.ProcessState == nil && strings.Contains(r.logText(), "Successfully acquired lease") {
					return i
				}
			}
			return -1
		}
		Eventually(leader, timeout, poll).ShouldNot(Equal(-1))
		first := leader()

		namespace := newNamespace()
		started := time.Now()
		var aks []*iamv1beta1.AccessKey
		for i := range size {
			aks = append(aks, accessKeyOn(namespace, fmt.Sprintf("flood-%03d", i), "failover"))
		}
		Eventually(func() int { return cloud.stats().Operations["create-api-key"] }, timeout, 20*time.Millisecond).
			Should(BeNumerically(">=", size/10), "a tenth of the keys are minted")

		By("scraping both replicas: each per-key series comes from one")
		perKey := map[string]int{}
		for _, r := range replicas {
			for _, series := range scrape(r.metrics, "exokey_key_created_timestamp_seconds", "exokey_access_keys") {
				perKey[series]++
			}
		}
		Expect(perKey).NotTo(BeEmpty())
		for series, n := range perKey {
			Expect(n).To(Equal(1), "%s is reported by %d replicas", series, n)
		}

		By("killing the leader")
		killed := time.Now()
		replicas[first].kill()
		other := 1 - first
		Eventually(func() string { return replicas[other].logText() }, timeout, 100*time.Millisecond).Should(ContainSubstring("Successfully acquired lease"))
		takeover := time.Since(killed)
		for _, ak := range aks {
			Eventually(func() bool { return ready(ak) }, 3*timeout, poll).Should(BeTrue(), "%s: %s", ak.Name, describe(replicas[other].manager))
		}
		allReady := time.Since(started)

		published := map[string]bool{}
		for _, ak := range aks {
			got := &iamv1beta1.AccessKey{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got)).To(Succeed())
			Expect(got.Status.Retiring).To(BeEmpty(), "%s got a second key", ak.Name)
			Expect(got.Status.Pending).To(BeZero())
			s := secretOf(ak)
			Expect(string(s.Data["EXOSCALE_API_KEY"])).To(Equal(got.Status.KeyID))
			Expect(cloud.works(s)).To(BeTrue(), ak.Name)
			published[got.Status.KeyID] = true
		}
		Expect(published).To(HaveLen(size))
		Eventually(func() map[string]bool { return cloud.liveKeys("failover-" + namespace + "-") }, timeout, poll).Should(Equal(published),
			"every live key is held by exactly one AccessKey's Secret: nothing the killed leader minted is left")
		creates := cloud.stats().Operations["create-api-key"]

		By("deleting them all")
		for _, ak := range aks {
			Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		}
		for _, ak := range aks {
			Eventually(func() bool { return gone(ak) }, 2*timeout, poll).Should(BeTrue(), ak.Name)
		}
		Expect(cloud.liveKeys("failover-"+namespace+"-")).To(BeEmpty(), "0 leaked")
		Expect(replicas[other].forbidden()).To(BeEmpty())
		AddReportEntry("failover in a flood", fmt.Sprintf(
			"%d AccessKeys, leader killed after %s: the standby led %s later (lease 4s), all Ready %s after the flood began; "+
				"%d keys created for %d AccessKeys (%d unpublished ones of the killed leader revoked), one per AccessKey, 0 leaked after deletion",
			size, killed.Sub(started).Round(100*time.Millisecond), takeover.Round(100*time.Millisecond), allReady.Round(100*time.Millisecond),
			creates, size, creates-size))
	})
})

// scrape reads a manager's metrics endpoint and returns the series of the
// named families, each as its name and labels, without the replica's own.
func scrape(address string, families ...string) []string {
	GinkgoHelper()
	resp, err := http.Get("http://" + address + "/metrics")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	var series []string
	for _, name := range families {
		f, ok := parsed[name]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			series = append(series, name+"{"+strings.Join(labels, ",")+"}")
		}
	}
	return series
}
