package controller

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

var _ = Describe("A burst of AccessKeys", func() {
	It("brings 200 AccessKeys to Ready with one create per key", func() {
		const n = 200
		namespace := newNamespace(nil)
		emu.ResetStats()
		started := time.Now()
		aks := make([]*iamv1alpha1.AccessKey, n)
		for i := range n {
			aks[i] = newAccessKey(namespace, fmt.Sprintf("burst-%03d", i), iamv1alpha1.IssuerAPIIAMv3)
		}
		for i := range aks {
			aks[i] = waitReadyWithin(aks[i], 3*time.Minute)
		}
		elapsed := time.Since(started)
		stats := emu.Stats()
		Expect(stats.ByOperationStatus["create-iam-role 200"]).To(Equal(n), "one role per key")
		Expect(stats.ByOperationStatus["create-api-key 200"]).To(Equal(n), "one API key per key")
		for _, ak := range aks {
			Expect(liveKeysOf(ak)).To(ConsistOf(ak.Status.KeyID))
		}
		AddReportEntry("burst", fmt.Sprintf("%d AccessKeys Ready in %s; emulator calls %d (%.2f per key): %v",
			n, elapsed.Round(time.Millisecond), stats.Total, float64(stats.Total)/n, stats.Operations))
	})
})
