package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

var _ = Describe("Failure modes", func() {
	// 5. Confirm before you replace, correctly.
	It("never replaces a key for a Secret it could not read again", func() {
		namespace := newNamespace(nil)
		ak := waitReady(newAccessKey(namespace, "confirm", iamv1beta1.IssuerAPIIAMv3))
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

var _ = Describe("Issuer deletion against a tenant", func() {
	It("lets an admin delete a ClusterKeyIssuer that a tenant's AccessKey merely names", func() {
		api := iamv1beta1.IssuerAPIIAMv3
		iss := clusterIssuer("held-"+newNamespace(nil), api, &metav1.LabelSelector{MatchLabels: map[string]string{"team": "chosen"}})
		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		Eventually(func() []string {
			got := &iamv1beta1.ClusterKeyIssuer{}
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), got)
			return got.Finalizers
		}, timeout, poll).Should(ContainElement(iamv1beta1.InUseFinalizer))

		// The tenant names the issuer from a namespace it does not serve:
		// refused, no key, and it must not pin the issuer.
		squatter := newAccessKey(newNamespace(nil), "squatter", api, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = iss.Name })
		waitRefused(squatter, ReasonNotPermitted)
		// A tenant that holds a key of it does pin it, until it goes.
		holder := waitReady(newAccessKey(newNamespace(map[string]string{"team": "chosen"}), "holder", api,
			func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = iss.Name }))

		Expect(k8sClient.Delete(ctx, iss)).To(Succeed())
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), &iamv1beta1.ClusterKeyIssuer{})
		}, 2*time.Second, poll).Should(Succeed(), "held by the AccessKey whose key it minted")
		Expect(k8sClient.Delete(ctx, holder)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), &iamv1beta1.ClusterKeyIssuer{}))
		}, timeout, poll).Should(BeTrue(), "the squatter's AccessKey does not hold the issuer")
		Expect(liveKeysOf(holder)).To(BeEmpty())
	})
})
