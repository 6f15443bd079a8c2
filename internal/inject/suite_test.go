package inject

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// The suite runs the webhook in a manager's webhook server, registered with
// a real kube-apiserver through config/webhook's MutatingWebhookConfiguration
// (envtest points it at the local server and its own CA): every pod below
// is created through the API server, which calls the webhook over TLS.

var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	ctx       context.Context
	cancel    context.CancelFunc
	scheme    = runtime.NewScheme()
	// calls counts the admission requests the webhook received.
	calls atomic.Int64
	// warnings are the admission warnings the API server relayed.
	warnings = &warningRecorder{}
)

func TestInjection(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Injection webhook suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(iamv1beta1.AddToScheme(scheme)).To(Succeed())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("..", "..", "config", "webhook", "manifests.yaml")}},
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	clientCfg := rest.CopyConfig(cfg)
	clientCfg.WarningHandler = warnings
	k8sClient, err = client.New(clientCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	hooks := &testEnv.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: hooks.LocalServingHost, Port: hooks.LocalServingPort,
			CertDir: hooks.LocalServingCertDir, TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }}}),
	})
	Expect(err).NotTo(HaveOccurred())
	injector := &Injector{Reader: mgr.GetClient(), Decoder: admission.NewDecoder(scheme)}
	mgr.GetWebhookServer().Register(Path, &webhook.Admission{Handler: admission.HandlerFunc(
		func(ctx context.Context, req admission.Request) admission.Response {
			calls.Add(1)
			return injector.Handle(ctx, req)
		})})
	managerDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(managerDone)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// Ready once the API server reaches it over TLS.
	Eventually(func() error {
		d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a local readiness probe
		conn, err := d.DialContext(ctx, "tcp", fmt.Sprintf("%s:%d", hooks.LocalServingHost, hooks.LocalServingPort))
		if err == nil {
			conn.Close()
		}
		return err
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
})

// managerDone is closed when the manager has stopped: the control plane is
// stopped only after, or its teardown waits on the manager's connections.
var managerDone chan struct{}

var _ = AfterSuite(func() {
	cancel()
	Eventually(managerDone, time.Minute).Should(BeClosed())
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.seen
	w.seen = nil
	return seen
}

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "inject-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func accessKey(namespace, name string, format iamv1beta1.SecretFormat, secretName string) *iamv1beta1.AccessKey {
	ak := &iamv1beta1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: iamv1beta1.AccessKeySpec{
			IssuerRef:  iamv1beta1.IssuerReference{Name: "exoscale"},
			Operations: []string{"get-sos-object"},
			Secret:     iamv1beta1.SecretSpec{Name: secretName, Format: format},
		},
	}
	Expect(k8sClient.Create(ctx, ak)).To(Succeed())
	// The webhook reads AccessKeys from the manager's cache.
	time.Sleep(200 * time.Millisecond)
	return ak
}

// deployment is an application's Deployment opting its pods in.
func deployment(namespace string, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": "backup", LabelInject: "true"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "backup"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "backup"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: "backup:1"}, {Name: "sidecar", Image: "proxy:1"}}},
			},
		},
	}
}

// podOf creates a pod of the Deployment's template through the API server,
// as its ReplicaSet would, and returns it as admitted.
func podOf(d *appsv1.Deployment, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{ObjectMeta: *d.Spec.Template.ObjectMeta.DeepCopy(), Spec: *d.Spec.Template.Spec.DeepCopy()}
	pod.Namespace, pod.Name = d.Namespace, name
	return pod, k8sClient.Create(ctx, pod)
}

func isForbidden(err error) bool { return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) }
