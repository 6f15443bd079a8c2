package v1alpha1_test

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// The API server stores v1beta1 and converts through the webhook: what is
// written at one version reads back the same at it, and as its equal at
// the other.
var _ = Describe("Conversion through the API server", func() {
	It("stores a v1alpha1 AccessKey at v1beta1 and reads it back as written", func() {
		namespace := newNamespace("convert")
		ak := validAccessKey(namespace)
		ak.Spec.Rotation = &iamv1alpha1.RotationSpec{Every: duration("720h"), GracePeriod: duration("1.5s"), MinGracePeriod: duration("0s")}
		ak.Spec.RestartTargets = []iamv1alpha1.RestartTarget{{Kind: "Deployment", Name: "app"}}
		Expect(k8sClient.Create(ctx, ak)).To(Succeed())

		beta := &iamv1beta1.AccessKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), beta)).To(Succeed())
		Expect(beta.Spec.Rotation).To(Equal(&iamv1beta1.RotationSpec{EverySeconds: 2592000, GracePeriodSeconds: 2, MinGracePeriodSeconds: ptr.To[int64](0)}))
		Expect(beta.Spec.Access).To(Equal(iamv1beta1.AccessRestricted))
		Expect(beta.Spec.Secret.Format).To(Equal(iamv1beta1.SecretFormatExoscale))
		Expect(beta.Annotations).To(HaveKeyWithValue(iamv1alpha1.DurationsAnnotation, `{"spec.rotation.every":"720h","spec.rotation.gracePeriod":"1.5s"}`))

		alpha := &iamv1alpha1.AccessKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), alpha)).To(Succeed())
		written, err := json.Marshal(ak.Spec)
		Expect(err).NotTo(HaveOccurred())
		Expect(json.Marshal(alpha.Spec)).To(MatchJSON(written), "the spec reads back at v1alpha1 as written, 720h and 1.5s included")
		Expect(alpha.Annotations).NotTo(HaveKey(iamv1alpha1.DurationsAnnotation))
		Expect(alpha.Status.ObservedGeneration).To(Equal(int64(-1)))
	})

	It("reads a v1beta1 AccessKey and issuer at v1alpha1, and keeps them through a v1alpha1 update", func() {
		namespace := newNamespace("convert")
		beta := &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: "unrestricted", Namespace: namespace},
			Spec: iamv1beta1.AccessKeySpec{
				IssuerRef: iamv1beta1.IssuerReference{Name: "exoscale"}, Access: iamv1beta1.AccessUnrestricted,
				TTLSeconds: 3600, Rotation: &iamv1beta1.RotationSpec{RenewBeforeSeconds: 600},
			},
		}
		Expect(k8sClient.Create(ctx, beta)).To(Succeed())
		alpha := &iamv1alpha1.AccessKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(beta), alpha)).To(Succeed())
		Expect(alpha.Spec.Unrestricted).To(BeTrue())
		Expect(alpha.Spec.TTL.Duration).To(Equal(time.Hour))
		Expect(alpha.Spec.Rotation.RenewBefore.Duration).To(Equal(10 * time.Minute))

		alpha.Labels = map[string]string{"edited": "at-v1alpha1"}
		Expect(k8sClient.Update(ctx, alpha)).To(Succeed())
		after := &iamv1beta1.AccessKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(beta), after)).To(Succeed())
		Expect(after.Labels).To(HaveKeyWithValue("edited", "at-v1alpha1"))
		Expect(after.Spec).To(Equal(beta.Spec), "a v1alpha1 client's update loses nothing of v1beta1")

		issuer := &iamv1beta1.KeyIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: "issuer", Namespace: namespace},
			Spec: iamv1beta1.IssuerSpec{
				CredentialsRef:   iamv1beta1.CredentialsReference{Name: "root"},
				InsecureEndpoint: iamv1beta1.PermissionAllow, Endpoint: "http://emulator.example:8080/v2",
				Allowed: iamv1beta1.Allowed{Unrestricted: iamv1beta1.PermissionAllow},
				Limits:  iamv1beta1.IssuerLimits{MaxGracePeriodSeconds: ptr.To[int64](7200)},
			},
		}
		Expect(k8sClient.Create(ctx, issuer)).To(Succeed())
		old := &iamv1alpha1.KeyIssuer{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(issuer), old)).To(Succeed())
		Expect(old.Spec.AllowInsecureEndpoint).To(BeTrue())
		Expect(old.Spec.Allowed.Unrestricted).To(BeTrue())
		Expect(old.Spec.Limits.MaxGracePeriod.Duration).To(Equal(2 * time.Hour))
		Expect(old.Spec.Limits.MinRotationPeriod.Duration).To(Equal(time.Hour), "v1beta1's default, 3600 seconds")
	})
})
