package plugin_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	exokey "github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/plugin"
)

// kubectl exokey against a real kube-apiserver and etcd, with exokey's
// controllers minting keys on an in-process emulator reached over HTTP.
// The plugin runs as the user would run it: its cobra command with
// --kubeconfig, through k8s.io/cli-runtime.

const (
	systemNamespace = "exokey-system"
	rootSecretName  = "exoscale-root"
)

var (
	testEnv        *envtest.Environment
	k8sClient      client.Client
	emu            *emulator.Server
	endpoint       string
	kubeconfigPath string
	ctx            context.Context
	rootKey        string
	rootSecret     string
)

func TestPlugin(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl exokey suite")
}

var _ = BeforeSuite(func() {
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(), "run the tests with `make test`")
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var cancel context.CancelFunc
	ctx, cancel = context.WithCancel(context.Background())

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(iamv1beta1.AddToScheme(scheme)).To(Succeed())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(testEnv.Stop)
	DeferCleanup(cancel) // first: the manager stops before the control plane
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	admin, err := testEnv.AddUser(envtest.User{Name: "platform-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfigPath = writeKubeconfig("platform-admin", kubeconfig)

	emu, err = emulator.New(emulator.Options{})
	Expect(err).NotTo(HaveOccurred())
	server := httptest.NewServer(emu)
	DeferCleanup(server.Close)
	endpoint = server.URL + "/v2"
	rootKey, rootSecret = emu.Root()

	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: rootSecretName, Namespace: systemNamespace},
		StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret},
	})).To(Succeed())
	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		Expect(k8sClient.Create(ctx, clusterIssuer(issuerName(api), api, iamv1beta1.Allowed{
			// A key of an issuer reads its own role: IAM operations are named.
			Operations: []string{"*", "get-api-key", "get-iam-role"}, Tags: []string{"*"}, Resources: []string{"sos/bucket:*"},
		}))).To(Succeed())
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:           scheme,
		Metrics:          metricsserver.Options{BindAddress: "0"},
		EventBroadcaster: exokey.NewEventBroadcaster(), //nolint:staticcheck // as the manager's
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: exokey.SecretCache(), exokey.InjectedPod(): exokey.PodCache(),
		}},
	})
	Expect(err).NotTo(HaveOccurred())
	clusterID, err := exokey.ClusterID(ctx, mgr.GetAPIReader())
	Expect(err).NotTo(HaveOccurred())
	issuers := &exokey.IssuerClients{Reader: mgr.GetAPIReader(), Base: fastConfig()}
	opts := controller.Options{MaxConcurrentReconciles: 4}
	Expect((&exokey.AccessKeyReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: exokey.NewEventRecorder(mgr),
		Issuers: issuers, DriftCheckPeriod: time.Minute, ClusterID: clusterID,
	}).SetupWithManager(mgr, opts)).To(Succeed())
	for _, cluster := range []bool{false, true} {
		Expect((&exokey.IssuerReconciler{Client: mgr.GetClient(), Issuers: issuers, Cluster: cluster,
			RecheckPeriod: time.Minute, CredentialsPollPeriod: time.Second}).SetupWithManager(mgr, opts)).To(Succeed())
	}
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

// userKubeconfig is a kubeconfig of a user in no group: RBAC alone says
// what it may do.
func userKubeconfig(name string) string {
	GinkgoHelper()
	user, err := testEnv.AddUser(envtest.User{Name: name}, nil)
	Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	return writeKubeconfig(name, kubeconfig)
}

func writeKubeconfig(name string, kubeconfig []byte) string {
	GinkgoHelper()
	path := filepath.Join(GinkgoT().TempDir(), name+".kubeconfig")
	Expect(os.WriteFile(path, kubeconfig, 0o600)).To(Succeed())
	return path
}

func fastConfig() exoscale.Config {
	return exoscale.Config{QPS: 1000, Burst: 1000, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 100 * time.Millisecond,
		PollInterval: 10 * time.Millisecond}
}

func issuerName(api iamv1beta1.IssuerAPI) string { return "emulator-" + strings.ToLower(string(api)) }

func clusterIssuer(name string, api iamv1beta1.IssuerAPI, allowed iamv1beta1.Allowed) *iamv1beta1.ClusterKeyIssuer {
	return &iamv1beta1.ClusterKeyIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: iamv1beta1.ClusterKeyIssuerSpec{IssuerSpec: iamv1beta1.IssuerSpec{
			API: api, Endpoint: endpoint,
			CredentialsRef: iamv1beta1.CredentialsReference{Name: rootSecretName, Namespace: systemNamespace},
			Allowed:        allowed,
		}},
	}
}

// result is one run of kubectl exokey.
type result struct {
	stdout, stderr string
	code           int
}

// kubectlExokey runs the plugin's command with args and the suite's
// kubeconfig, as `kubectl exokey ARGS --kubeconfig PATH` would.
func kubectlExokey(env map[string]string, args ...string) result {
	return kubectlExokeyAs(kubeconfigPath, env, args...)
}

// kubectlExokeyAs runs the plugin with another user's kubeconfig.
func kubectlExokeyAs(kubeconfig string, env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	o := &plugin.Options{
		IOStreams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
		Exoscale:  fastConfig(),
		Getenv:    func(name string) string { return env[name] },
	}
	cmd := plugin.NewCommand(o)
	cmd.SetArgs(append(args, "--kubeconfig", kubeconfig))
	err := cmd.ExecuteContext(ctx)
	if err != nil && err.Error() != "" {
		stderr.WriteString("error: " + err.Error() + "\n")
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: plugin.ExitCode(err)}
	GinkgoWriter.Printf("$ kubectl exokey %s\n%s%s(exit %d)\n", strings.Join(args, " "), r.stdout, r.stderr, r.code)
	return r
}

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func accessKey(namespace, name string, api iamv1beta1.IssuerAPI, spec iamv1beta1.AccessKeySpec) *iamv1beta1.AccessKey {
	spec.IssuerRef = iamv1beta1.IssuerReference{Kind: iamv1beta1.ClusterKeyIssuerKind, Name: issuerName(api)}
	return &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Spec: spec}
}

// readyKey creates ak and waits until it is Ready.
func readyKey(ak *iamv1beta1.AccessKey) *iamv1beta1.AccessKey {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, ak)).To(Succeed())
	return waitReady(client.ObjectKeyFromObject(ak))
}

func waitReady(key client.ObjectKey) *iamv1beta1.AccessKey {
	GinkgoHelper()
	ak := &iamv1beta1.AccessKey{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, ak)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(ak.Status.Conditions, exokey.ConditionReady)).To(BeTrue(), "conditions %+v", ak.Status.Conditions)
	}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	return ak
}

// credentials reads the key and secret an AccessKey's Secret publishes.
func credentials(ak *iamv1beta1.AccessKey) (key, secret string) {
	GinkgoHelper()
	s := &corev1.Secret{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ak.Namespace, Name: ak.Status.SecretName}, s)).To(Succeed())
	return string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"])
}
