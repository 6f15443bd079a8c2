package controller

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

var _ = Describe("Crash safety", func() {
	It("leaks no key and loses no credential when Secret and status writes fail around the create", func() {
		namespace := newNamespace(nil)
		faults.set(namespace, 0.4)
		DeferCleanup(func() { faults.set("", 0) })

		var aks []*iamv1alpha1.AccessKey
		for i := range 10 {
			for _, api := range []iamv1alpha1.IssuerAPI{iamv1alpha1.IssuerAPIIAMv3, iamv1alpha1.IssuerAPIAccessKeyV2} {
				aks = append(aks, newAccessKey(namespace, fmt.Sprintf("crash-%s-%d", lower(api), i), api, func(ak *iamv1alpha1.AccessKey) {
					ak.Spec.Rotation.GracePeriod.Duration = time.Second
				}))
			}
		}
		// Three rounds: the first key, then two replacements, each under faults.
		for round := range 3 {
			for i, ak := range aks {
				aks[i] = waitReadyWithin(ak, 2*time.Minute)
				if round < 2 {
					aks[i] = edit(aks[i], func(ak *iamv1alpha1.AccessKey) {
						ak.Spec.Operations = append(ak.Spec.Operations, []string{"put-sos-object", "delete-sos-object"}[round])
					})
				}
			}
		}
		secretFailures, statusFailures := faults.counts()
		Expect(secretFailures).To(BeNumerically(">", 5), "faults must have hit Secret writes")
		Expect(statusFailures).To(BeNumerically(">", 5), "faults must have hit status writes")
		AddReportEntry("injected failures", fmt.Sprintf("Secret writes %d, status writes %d", secretFailures, statusFailures))

		faults.set("", 0)
		for _, ak := range aks {
			// Every live key of the AccessKey is the one its Secret holds,
			// once retired keys have passed their grace period.
			Eventually(func() []string { return liveKeysOf(ak) }, time.Minute, poll).Should(ConsistOf(fetch(ak).Status.KeyID), ak.Name)
			s := secretOf(ak)
			Expect(s.Annotations[iamv1alpha1.KeyIDAnnotation]).To(Equal(fetch(ak).Status.KeyID))
			Expect(allowed(s, "get-sos-object", "backups")).To(BeTrue(), "the published credential works")
			Expect(allowed(s, "delete-sos-object", "backups")).To(BeTrue(), "and holds the latest restrictions")
		}
	})
})

func lower(api iamv1alpha1.IssuerAPI) string {
	if api == iamv1alpha1.IssuerAPIIAMv3 {
		return "v3"
	}
	return "v2"
}

func waitReadyWithin(ak *iamv1alpha1.AccessKey, within time.Duration) *iamv1alpha1.AccessKey {
	var got *iamv1alpha1.AccessKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = &iamv1alpha1.AccessKey{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got)).To(Succeed())
		ready := condition(got, ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(BeEquivalentTo("True"))
		g.Expect(ready.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Pending).To(BeNil())
		g.Expect(got.Status.RestrictionHash).To(Equal(restrictionHash(got)))
	}, within, poll).Should(Succeed())
	return got
}
