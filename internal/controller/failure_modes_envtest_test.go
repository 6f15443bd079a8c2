package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

var _ = Describe("Failure modes", func() {
	// 5. Confirm before you replace, correctly.
	It("never replaces a key for a Secret it could not read again", func() {
		namespace := newNamespace(nil)
		ak := waitReady(newAccessKey(namespace, "confirm", iamv1alpha1.IssuerAPIIAMv3))
		first := ak.Status.KeyID

		// The Secret's data is changed, and the API server cannot be read
		// to confirm it: the cache alone must not replace the key.
		creates := func() int { return emu.Stats().Operations["create-iam-role"] }
		createdBefore := creates()
		failSecretReads(namespace)
		DeferCleanup(func() { failSecretReads("") })
		s := secretOf(ak)
		s.Data["EXOSCALE_API_SECRET"] = []byte("edited")
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(failedSecretReads, timeout, poll).Should(BeNumerically(">=", 1), "the confirmation was tried")
		Eventually(func() string {
			if c := condition(fetch(ak), ConditionSynced); c != nil && c.Status == metav1.ConditionFalse {
				return c.Message
			}
			return ""
		}, timeout, poll).Should(ContainSubstring("injected read failure"))
		Consistently(func() string { return fetch(ak).Status.KeyID }, 2*time.Second, poll).Should(Equal(first),
			"no key is replaced on a failed read")
		Expect(liveKeysOf(ak)).To(ConsistOf(first))
		Expect(creates()).To(Equal(createdBefore), "no key was even minted on the cache's word")

		// Once the API server answers, the tampered Secret is confirmed and
		// the key replaced.
		failSecretReads("")
		replaced := waitReplaced(ak, first)
		Expect(allowed(secretOf(replaced), "get-sos-object", "backups")).To(BeTrue())
	})
})
