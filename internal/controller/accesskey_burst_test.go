package controller

import (
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

var _ = Describe("A burst of AccessKeys", func() {
	It("brings 200 AccessKeys to Ready with one create per key", func() {
		const n = 200
		namespace := newNamespace(nil)
		emu.ResetStats()
		started := time.Now()
		aks := make([]*iamv1beta1.AccessKey, n)
		for i := range n {
			aks[i] = newAccessKey(namespace, fmt.Sprintf("burst-%03d", i), iamv1beta1.IssuerAPIIAMv3)
		}
		for i := range aks {
			aks[i] = waitReadyWithin(aks[i], 3*time.Minute)
		}
		elapsed := time.Since(started)
		stats := emu.Stats()
		// The emulator's counts are of every caller: AccessKeys of earlier
		// specs (whose clock this suite moves) may mint meanwhile. What is
		// this namespace's: one live key per AccessKey, and no key of its
		// minted and revoked (an unpublished duplicate is revoked).
		Expect(stats.ByOperationStatus["create-iam-role 200"]).To(BeNumerically(">=", n))
		for _, ak := range aks {
			Expect(liveKeysOf(ak)).To(ConsistOf(ak.Status.KeyID))
		}
		Expect(eventReasons(namespace)).NotTo(ContainElement(EventKeyRevoked), "no second key was minted and revoked")
		AddReportEntry("burst", fmt.Sprintf("%d AccessKeys Ready in %s; emulator calls %d (%.2f per key): %v",
			n, elapsed.Round(time.Millisecond), stats.Total, float64(stats.Total)/n, stats.Operations))
	})
})

var _ = Describe("AccessKeys over their namespace's share of the issuer", func() {
	It("wait without a status write, then mint in turn", func() {
		const n, rate = 6, 2.0 // mints a second, a burst of 1
		iss := clusterIssuer("share-"+newNamespace(nil), iamv1beta1.IssuerAPIAccessKeyV2, nil)
		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		setShare(iss.Name, rate, 1)
		namespace := newNamespace(nil)

		// Every status an AccessKey is written with, from a watch.
		watcher, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := watcher.Watch(ctx, &iamv1beta1.AccessKeyList{}, client.InNamespace(namespace))
		Expect(err).NotTo(HaveOccurred())
		var mu sync.Mutex
		written := map[string][]iamv1beta1.AccessKeyStatus{}
		go func() {
			defer GinkgoRecover()
			for ev := range w.ResultChan() {
				if ak, ok := ev.Object.(*iamv1beta1.AccessKey); ok {
					mu.Lock()
					seen := written[ak.Name]
					if len(seen) == 0 || !equality.Semantic.DeepEqual(seen[len(seen)-1], ak.Status) {
						written[ak.Name] = append(seen, ak.Status)
					}
					mu.Unlock()
				}
			}
		}()
		DeferCleanup(w.Stop)

		started := time.Now()
		aks := make([]*iamv1beta1.AccessKey, n)
		for i := range n {
			aks[i] = newAccessKey(namespace, fmt.Sprintf("share-%d", i), iamv1beta1.IssuerAPIAccessKeyV2,
				func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = iss.Name })
		}
		for i := range aks {
			aks[i] = waitReady(aks[i])
		}
		Expect(time.Since(started)).To(BeNumerically(">=", time.Duration(float64(n-2)/rate*float64(time.Second))),
			"the share was to hold the AccessKeys back")

		mu.Lock()
		defer mu.Unlock()
		for _, ak := range aks {
			for _, status := range written[ak.Name] {
				waiting := status.Pending.IsZero() && status.KeyID == "" && len(status.Conditions) == 0
				Expect(waiting && ptr.Deref(status.ObservedGeneration, 0) > 0).To(BeFalse(),
					"%s was written while it waited for its share: %+v", ak.Name, status)
			}
		}
	})
})

// setShare gives a ClusterKeyIssuer a mint share of its own, as if
// --exoscale-qps were rate.
func setShare(name string, rate float64, burst int) {
	id := issuerID(&issuer{Kind: iamv1beta1.ClusterKeyIssuerKind, Key: types.NamespacedName{Name: name}})
	testIssuers.mu.Lock()
	defer testIssuers.mu.Unlock()
	if testIssuers.shares == nil {
		testIssuers.shares = map[string]*mintShare{}
	}
	testIssuers.shares[id] = newMintShare(rate, burst)
}
