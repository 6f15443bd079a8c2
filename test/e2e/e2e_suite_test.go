//go:build e2e

// Package e2e runs exokey as it runs in a cluster: the control plane from
// bin/k8s (etcd, kube-apiserver, kube-controller-manager for garbage
// collection), the chart's CRDs and RBAC, the manager binary authenticated as
// the chart's ServiceAccount, and the emulator binary.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

const (
	releaseNamespace      = "exokey-system"
	serviceAccount        = "exokey"
	webhookServiceAccount = "exokey-webhook"
)

var (
	root              string
	workDir           string
	env               *envtest.Environment
	adminCfg          *rest.Config
	k8sClient         client.Client
	ctx               context.Context
	cancel            context.CancelFunc
	endpoint          string
	rootKey           string
	rootSecret        string
	managerKubeconfig string
	// webhookKubeconfig authenticates as the webhook's ServiceAccount.
	webhookKubeconfig string
	// adminKubeconfig is a cluster admin's, for the tools a user runs:
	// Helm, kubectl.
	adminKubeconfig   string
	controllerManager *exec.Cmd
	emulatorProcess   *exec.Cmd
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "exokey end-to-end")
}

var _ = BeforeSuite(func() {
	ctx, cancel = context.WithCancel(context.Background())
	var err error
	root, err = filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	Expect(assets).NotTo(BeEmpty(), "run with `make test-e2e`")
	// Logs and state stay in bin/e2e/ when the suite fails, for a look.
	Expect(os.MkdirAll(filepath.Join(root, "bin"), 0o755)).To(Succeed())
	workDir, err = os.MkdirTemp(filepath.Join(root, "bin"), "e2e-")
	Expect(err).NotTo(HaveOccurred())

	By("starting etcd and kube-apiserver")
	env = &envtest.Environment{BinaryAssetsDirectory: assets}
	adminCfg, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(iamv1beta1.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(adminCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	By("starting kube-controller-manager for garbage collection, the aggregated roles, and Deployments (the tests play the kubelet)")
	admin, err := env.AddUser(envtest.User{Name: "controller-manager", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	adminKubeconfig = writeKubeconfig(admin.Config(), "admin.kubeconfig")
	controllerManager = start("kube-controller-manager", filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+adminKubeconfig, "--controllers=garbagecollector,namespace,clusterrole-aggregation,deployment,replicaset",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false")

	By("applying the chart's CRDs and RBAC (helm template)")
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace}})).To(Succeed())
	applied := map[string]int{}
	for _, obj := range renderChart() {
		switch obj.GetKind() {
		case "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			Expect(k8sClient.Create(ctx, obj)).To(Succeed(), obj.GetKind()+"/"+obj.GetName())
			applied[obj.GetKind()]++
		}
	}
	Expect(applied["CustomResourceDefinition"]).To(Equal(3))
	Expect(applied["ClusterRole"]).To(BeNumerically(">=", 4), "the manager's, and view, edit and admin for tenants")
	Expect(applied["ValidatingAdmissionPolicy"]).To(Equal(1))
	Eventually(func() error {
		return k8sClient.List(ctx, &iamv1beta1.AccessKeyList{})
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())

	By("issuing tokens for the chart's ServiceAccounts, the controllers' and the webhook's (TokenRequest)")
	managerKubeconfig = serviceAccountKubeconfig(serviceAccount)
	webhookKubeconfig = serviceAccountKubeconfig(webhookServiceAccount)

	By("starting the emulator binary")
	emulatorProcess, endpoint, rootKey, rootSecret = startEmulator()
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "exoscale-root", Namespace: releaseNamespace},
		StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret},
	})).To(Succeed())
	Expect(k8sClient.Create(ctx, &iamv1beta1.ClusterKeyIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "exoscale"},
		Spec: iamv1beta1.ClusterKeyIssuerSpec{IssuerSpec: iamv1beta1.IssuerSpec{
			API: iamv1beta1.IssuerAPIIAMv3, Endpoint: endpoint, KeyNamePrefix: "e2e",
			CredentialsRef: iamv1beta1.CredentialsReference{Name: "exoscale-root", Namespace: releaseNamespace},
			Allowed:        iamv1beta1.Allowed{Operations: []string{"*-sos-*"}, Resources: []string{"sos/bucket:*"}},
			Limits:         iamv1beta1.IssuerLimits{MinSessionTTLSeconds: ptr.To(iamv1beta1.SecondsOf(time.Second))},
		}},
	})).To(Succeed())
})

var _ = AfterSuite(func() {
	for _, p := range []*exec.Cmd{controllerManager, emulatorProcess} {
		if p != nil && p.Process != nil {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}
	cancel()
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

var _ = ReportAfterSuite("keep the logs of a failed run", func(report Report) {
	if workDir == "" {
		return
	}
	if report.SuiteSucceeded {
		_ = os.RemoveAll(workDir)
		return
	}
	fmt.Fprintf(GinkgoWriter, "the processes' logs are in %s\n", workDir)
})

func ptrTo[T any](v T) *T { return &v }

// renderChart renders dist/chart as release exokey with helm template.
func renderChart(args ...string) []*unstructured.Unstructured {
	rendered := run(filepath.Join(root, "bin", "helm"), append([]string{"template", "exokey", filepath.Join(root, "dist", "chart"),
		"--namespace", releaseNamespace, "--kube-version", os.Getenv("K8S_VERSION")}, args...)...)
	var objects []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err == io.EOF {
			return objects
		} else {
			ExpectWithOffset(1, err).NotTo(HaveOccurred())
		}
		objects = append(objects, obj)
	}
}

// serviceAccountKubeconfig writes a kubeconfig with a token of a
// ServiceAccount of the release namespace.
func serviceAccountKubeconfig(name string) string {
	GinkgoHelper()
	return serviceAccountKubeconfigOf(k8sClient, adminCfg, name, name+".kubeconfig")
}

// serviceAccountKubeconfigOf is serviceAccountKubeconfig on the control
// plane that c and admin reach, written to file.
func serviceAccountKubeconfigOf(c client.Client, admin *rest.Config, name, file string) string {
	GinkgoHelper()
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: releaseNamespace}}
	Expect(c.SubResource("token").Create(ctx, sa, request)).To(Succeed())
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = request.Status.Token
	return writeKubeconfig(cfg, file)
}

func writeKubeconfig(cfg *rest.Config, name string) string {
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kubeconfig.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{
		Token: cfg.BearerToken, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData,
	}
	kubeconfig.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	kubeconfig.CurrentContext = "e2e"
	path := filepath.Join(workDir, name)
	Expect(clientcmd.WriteToFile(*kubeconfig, path)).To(Succeed())
	return path
}

// run runs a command to completion and returns its stdout.
func run(name string, args ...string) []byte {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "%s: %s", name, stderr.String())
	return out
}

// start starts a long-running process with its output in a log file.
func start(name, binary string, args ...string) *exec.Cmd {
	log, err := os.Create(filepath.Join(workDir, name+".log"))
	Expect(err).NotTo(HaveOccurred())
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	Expect(cmd.Start()).To(Succeed(), binary)
	return cmd
}

func startEmulator() (*exec.Cmd, string, string, string) {
	cmd := exec.Command(filepath.Join(root, "bin", "exoscale-emulator"), "--listen", "127.0.0.1:0", "--quiet")
	stdout, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	Expect(cmd.Start()).To(Succeed())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	Expect(err).NotTo(HaveOccurred())
	var banner struct{ Endpoint, Key, Secret string }
	Expect(json.Unmarshal([]byte(line), &banner)).To(Succeed())
	return cmd, banner.Endpoint, banner.Key, banner.Secret
}

// manager is one manager process, run as the chart's ServiceAccount.
type manager struct {
	cmd *exec.Cmd
	log string
}

func startManager(name string, flags ...string) *manager {
	return startManagerFrom(name, filepath.Join(root, "bin", "manager"), flags...)
}

// startManagerFrom runs the manager binary at path, as the chart's ServiceAccount.
func startManagerFrom(name, binary string, flags ...string) *manager {
	if len(flags) == 0 {
		flags = []string{"--drift-check-period=5s"}
	}
	cmd := start(name, binary, append([]string{
		"--kubeconfig=" + managerKubeconfig, "--leader-elect", "--leader-election-namespace=" + releaseNamespace,
		"--metrics-bind-address=0", "--health-probe-bind-address=0"}, flags...)...)
	return &manager{cmd: cmd, log: filepath.Join(workDir, name+".log")}
}

// stop stops the manager as Kubernetes does a pod: SIGTERM, then waits.
func (m *manager) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
}

func (m *manager) kill() {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	_ = m.cmd.Wait()
}

func (m *manager) logText() string {
	raw, _ := os.ReadFile(m.log)
	return string(raw)
}

// forbidden returns the log lines that report an RBAC refusal.
func (m *manager) forbidden() []string {
	var lines []string
	for _, line := range strings.Split(m.logText(), "\n") {
		if strings.Contains(line, "forbidden") || strings.Contains(line, "Forbidden") {
			lines = append(lines, line)
		}
	}
	return lines
}

func describe(m *manager) string { return fmt.Sprintf("manager log %s", m.log) }
