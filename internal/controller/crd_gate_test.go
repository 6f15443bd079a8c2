package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// An older CRD on the API server: the schema lacks status.pending, which
// the API server would prune from every write. The controllers hold, say
// so, and go on once the CRD is current again.
var _ = Describe("The installed CRDs", func() {
	It("hold the controllers while a field they write is missing, and heal when the CRD is applied", func() {
		namespace := newNamespace(nil)
		current := &apiextensionsv1.CustomResourceDefinition{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "accesskeys.iam.exokey.io"}, current)).To(Succeed())
		setSchema := func(mutate func(*apiextensionsv1.JSONSchemaProps)) {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				crd := &apiextensionsv1.CustomResourceDefinition{}
				if err := k8sClient.Get(ctx, client.ObjectKey{Name: current.Name}, crd); err != nil {
					return err
				}
				for i := range crd.Spec.Versions {
					if crd.Spec.Versions[i].Name == "v1beta1" {
						mutate(crd.Spec.Versions[i].Schema.OpenAPIV3Schema)
					}
				}
				return k8sClient.Update(ctx, crd)
			})).To(Succeed())
		}
		var pending apiextensionsv1.JSONSchemaProps
		setSchema(func(s *apiextensionsv1.JSONSchemaProps) {
			status := s.Properties["status"]
			pending = status.Properties["pending"]
			delete(status.Properties, "pending")
			s.Properties["status"] = status
		})
		restore := func() {
			setSchema(func(s *apiextensionsv1.JSONSchemaProps) {
				status := s.Properties["status"]
				status.Properties["pending"] = pending
				s.Properties["status"] = status
			})
		}
		DeferCleanup(func() {
			restore()
			Eventually(testCRDs.Refusal, timeout, poll).Should(BeEmpty())
		})
		Eventually(testCRDs.Refusal, timeout, poll).Should(ContainSubstring("CRD accesskeys.iam.exokey.io lacks v1beta1: .status.pending"))

		ak := newAccessKey(namespace, "held", iamv1beta1.IssuerAPIIAMv3)
		Eventually(func(g Gomega) {
			got := fetch(ak)
			ready := condition(got, ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(ReasonCRDOutdated))
			g.Expect(ready.Message).To(ContainSubstring("apply this release's CRDs"))
			g.Expect(condition(got, ConditionStalled)).To(HaveField("Status", metav1.ConditionTrue))
		}, timeout, poll).Should(Succeed())
		Consistently(func() string { return fetch(ak).Status.KeyID }, "1s", poll).Should(BeEmpty(), "nothing is minted into a pruned status")
		Expect(liveKeysOf(ak)).To(BeEmpty())
		issuerReason := func() string {
			iss := &iamv1beta1.ClusterKeyIssuer{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: issuerName(iamv1beta1.IssuerAPIIAMv3)}, iss)).To(Succeed())
			if ready := meta.FindStatusCondition(iss.Status.Conditions, ConditionReady); ready != nil {
				return ready.Reason
			}
			return ""
		}
		Eventually(issuerReason, timeout, poll).Should(Equal(ReasonCRDOutdated), "issuers are held too")

		restore()
		got := waitReady(ak)
		Expect(got.Status.KeyID).NotTo(BeEmpty())
		Expect(condition(got, ConditionStalled)).To(BeNil())
		// At once, not at the issuer's next recheck (a minute here).
		Eventually(issuerReason, 10*time.Second, poll).Should(Equal(ReasonIssuerReady))
	})
})
