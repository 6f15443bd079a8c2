//go:build e2e

package e2e

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
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
