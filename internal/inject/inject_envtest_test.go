package inject

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

var _ = Describe("The injection webhook", func() {
	var namespace string
	BeforeEach(func() {
		namespace = newNamespace()
		warnings.take()
	})

	It("wires an AccessKey's Secret into the pods of a Deployment that asks for it", func() {
		accessKey(namespace, "writer", iamv1beta1.SecretFormatAWS, "")
		accessKey(namespace, "reader", iamv1beta1.SecretFormatCredentialsFile, "reader-creds")
		d := deployment(namespace, map[string]string{AnnotationAccessKeys: "writer,reader", AnnotationContainers: "app"})
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		before := calls.Load()
		pod, err := podOf(d, "backup-1")
		Expect(err).NotTo(HaveOccurred())
		Expect(calls.Load()).To(Equal(before+1), "the API server did not call the webhook")

		app, sidecar := pod.Spec.Containers[0], pod.Spec.Containers[1]
		Expect(app.EnvFrom).To(ConsistOf(corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "writer"}}}))
		Expect(app.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "exokey-reader", ReadOnly: true,
			MountPath: "/var/run/secrets/exokey/reader"}))
		Expect(sidecar.EnvFrom).To(BeEmpty())
		Expect(sidecar.VolumeMounts).NotTo(ContainElement(HaveField("Name", "exokey-reader")))
		Expect(pod.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.Secret.SecretName", "reader-creds")))
		Expect(pod.Annotations).To(HaveKeyWithValue(AnnotationInjected, "reader,writer"))
		Expect(warnings.take()).To(BeEmpty())
	})

	It("never sees a pod without the label, and leaves it as it was", func() {
		accessKey(namespace, "writer", iamv1beta1.SecretFormatExoscale, "")
		before := calls.Load()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "plain", Annotations: map[string]string{AnnotationAccessKeys: "writer"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
		Expect(k8sClient.Create(ctx, pod)).To(Succeed())
		Expect(calls.Load()).To(Equal(before), "a pod without the label reached the webhook")
		Expect(pod.Spec.Containers[0].EnvFrom).To(BeEmpty())
		Expect(pod.Annotations).NotTo(HaveKey(AnnotationInjected))
	})

	It("does not inject twice a pod that already has its credentials", func() {
		accessKey(namespace, "writer", iamv1beta1.SecretFormatExoscale, "")
		accessKey(namespace, "reader", iamv1beta1.SecretFormatCredentialsFile, "")
		d := deployment(namespace, map[string]string{AnnotationAccessKeys: "writer,reader"})
		first, err := podOf(d, "backup-1")
		Expect(err).NotTo(HaveOccurred())
		// The admitted pod, created again as it is (a controller that copies
		// a pod, or the webhook reinvoked): nothing is added a second time.
		again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "backup-2",
			Labels: first.Labels, Annotations: first.Annotations}, Spec: *first.Spec.DeepCopy()}
		again.Spec.NodeName = ""
		Expect(k8sClient.Create(ctx, again)).To(Succeed())
		for i := range again.Spec.Containers {
			Expect(again.Spec.Containers[i].EnvFrom).To(HaveLen(1))
			Expect(again.Spec.Containers[i].VolumeMounts).To(HaveLen(len(first.Spec.Containers[i].VolumeMounts)))
		}
		Expect(again.Spec.Volumes).To(HaveLen(len(first.Spec.Volumes)))
		Expect(again.Annotations[AnnotationInjected]).To(Equal("reader,writer"))
	})

	It("takes the AccessKeys from the pod's ServiceAccount, and the pod's own annotation over it", func() {
		accessKey(namespace, "team-default", iamv1beta1.SecretFormatExoscale, "")
		accessKey(namespace, "special", iamv1beta1.SecretFormatExoscale, "")
		Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "backup",
			Annotations: map[string]string{AnnotationAccessKeys: "team-default"}}})).To(Succeed())
		time.Sleep(200 * time.Millisecond) // the webhook reads ServiceAccounts from the manager's cache

		d := deployment(namespace, nil)
		d.Spec.Template.Spec.ServiceAccountName = "backup"
		pod, err := podOf(d, "from-sa")
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.Spec.Containers[0].EnvFrom).To(ConsistOf(HaveField("SecretRef.Name", "team-default")))

		d.Spec.Template.Annotations = map[string]string{AnnotationAccessKeys: "special"}
		pod, err = podOf(d, "own")
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.Spec.Containers[0].EnvFrom).To(ConsistOf(HaveField("SecretRef.Name", "special")))
	})

	It("admits a pod whose AccessKey does not exist yet, with a warning", func() {
		pod, err := podOf(deployment(namespace, map[string]string{AnnotationAccessKeys: "later"}), "early")
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.Spec.Containers[0].EnvFrom).To(ConsistOf(HaveField("SecretRef.Name", "later")))
		Expect(warnings.take()).To(ContainElement(ContainSubstring("AccessKey later does not exist in namespace " + namespace + " yet")))
	})

	DescribeTable("refuses a pod that names what it may not have",
		func(annotations map[string]string, message string) {
			_, err := podOf(deployment(namespace, annotations), "refused")
			Expect(err).To(HaveOccurred())
			Expect(isForbidden(err)).To(BeTrue(), err.Error())
			Expect(err.Error()).To(ContainSubstring(message))
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "refused"}, &corev1.Pod{})).NotTo(Succeed())
		},
		Entry("another namespace's AccessKey", map[string]string{AnnotationAccessKeys: "kube-system/root"},
			`"kube-system/root" names an AccessKey of another namespace`),
		Entry("a name that is no AccessKey's", map[string]string{AnnotationAccessKeys: "Not_A_Name"}, `"Not_A_Name" is not an AccessKey name`),
		Entry("no AccessKey at all", nil, "names no AccessKey"),
		Entry("a container it does not have", map[string]string{AnnotationAccessKeys: "writer", AnnotationContainers: "ghost"}, `no container "ghost"`),
	)
})
