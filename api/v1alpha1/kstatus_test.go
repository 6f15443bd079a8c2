package v1alpha1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// No controller runs here: what the API server answers for an object no
// controller has served is what Helm 4, Flux and kstatus judge before
// exokey has looked at it.
var _ = Describe("An object no controller has served yet", func() {
	for name, newObject := range map[string]func(namespace string) client.Object{
		"AccessKey":        func(namespace string) client.Object { return validAccessKey(namespace) },
		"KeyIssuer":        func(namespace string) client.Object { return validKeyIssuer(namespace) },
		"ClusterKeyIssuer": func(string) client.Object { return validClusterKeyIssuer() },
	} {
		It("is InProgress to kstatus: a "+name+"'s observedGeneration starts at -1", func() {
			obj := newObject(newNamespace("kstatus"))
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed()) })
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())

			raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			Expect(err).NotTo(HaveOccurred())
			observed, found, err := unstructured.NestedInt64(raw, "status", "observedGeneration")
			Expect(err).NotTo(HaveOccurred())
			Expect(found).To(BeTrue(), "the CRD defaults status.observedGeneration")
			Expect(observed).To(Equal(int64(-1)))

			result, err := status.Compute(&unstructured.Unstructured{Object: raw})
			Expect(err).NotTo(HaveOccurred())
			Expect(result.Status).To(Equal(status.InProgressStatus), result.Message)
		})
	}
})
