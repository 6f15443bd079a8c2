package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/conversion"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// The suite installs the generated CRDs into a real kube-apiserver and etcd
// (KUBEBUILDER_ASSETS, built by `make control-plane`), with their conversion
// webhook served here by controller-runtime's handler (as the manager's
// webhook server does), and checks what admission accepts and refuses at
// v1alpha1, and what reads back at either version.

var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	ctx       context.Context
	cancel    context.CancelFunc
)

func TestAPI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API validation suite")
}

var _ = BeforeSuite(func() {
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(),
		"KUBEBUILDER_ASSETS must point at etcd and kube-apiserver: run the tests with `make test`")
	ctx, cancel = context.WithCancel(context.Background())

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(iamv1alpha1.AddToScheme(scheme)).To(Succeed())
	Expect(iamv1beta1.AddToScheme(scheme)).To(Succeed())

	// envtest points the CRDs' conversion at a local server, as the kinds
	// are convertible in scheme.
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		CRDInstallOptions:     envtest.CRDInstallOptions{Scheme: scheme},
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	hook := testEnv.WebhookInstallOptions
	server := webhook.NewServer(webhook.Options{Host: hook.LocalServingHost, Port: hook.LocalServingPort, CertDir: hook.LocalServingCertDir})
	server.Register("/convert", conversion.NewWebhookHandler(scheme, conversion.NewRegistry()))
	go func() { _ = server.Start(ctx) }()
	Eventually(func() error { return server.StartedChecker()(nil) }, 10*time.Second, 50*time.Millisecond).Should(Succeed())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// newNamespace creates a namespace for one test and returns its name.
func newNamespace(name string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed()) })
	return ns.Name
}
