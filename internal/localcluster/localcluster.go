// Package localcluster starts a local control plane (etcd and kube-apiserver
// from bin/k8s, and kube-controller-manager on request) with exokey's CRDs
// installed, for the demo and the benchmark.
package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/crds"
)

// Cluster is a running local control plane.
type Cluster struct {
	env     *envtest.Environment
	assets  string
	workDir string
	// controllerManager runs when StartControllerManager was called.
	controllerManager *exec.Cmd
	// Config is an admin's.
	Config *rest.Config
	// Client is an admin client with exokey's types registered.
	Client client.Client
	// Kubeconfig is the path of an admin kubeconfig, for kubectl and the manager.
	Kubeconfig string
}

// Start starts etcd and kube-apiserver from assets (KUBEBUILDER_ASSETS),
// installs the CRDs of root/config/crd/bases and writes an admin kubeconfig
// into workDir.
func Start(root, assets, workDir string) (*Cluster, error) {
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: build the control plane with `make control-plane`")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	c := &Cluster{env: env, Config: cfg, assets: assets, workDir: workDir}
	if err := c.setUp(workDir); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) setUp(workDir string) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := iamv1beta1.AddToScheme(scheme); err != nil {
		return err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	var err error
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	user, err := c.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(workDir, "kubeconfig")
	return os.WriteFile(c.Kubeconfig, kubeconfig, 0o600)
}

// StartControllerManager runs kube-controller-manager with the given
// controllers only (for example garbagecollector and namespace, so a
// deleted owner's Secrets and a deleted namespace's objects go as they do
// in a cluster). Its log is workDir/kube-controller-manager.log.
func (c *Cluster) StartControllerManager(controllers ...string) error {
	log, err := os.Create(filepath.Join(c.workDir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.assets, "kube-controller-manager"), "--kubeconfig="+c.Kubeconfig,
		"--controllers="+strings.Join(controllers, ","), "--leader-elect=false", "--secure-port=0",
		"--use-service-account-credentials=false", "--kube-api-qps=500", "--kube-api-burst=1000")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager (run make control-plane): %w", err)
	}
	c.controllerManager = cmd
	return nil
}

// Stop stops the control plane.
func (c *Cluster) Stop() error {
	if cm := c.controllerManager; cm != nil {
		_ = cm.Process.Signal(syscall.SIGTERM)
		_ = cm.Wait()
	}
	return c.env.Stop()
}

// MountSecret keeps dir holding the Secret's tls.crt and tls.key until ctx
// ends, as the kubelet keeps a mounted Secret volume current: on this
// control plane there is no kubelet, and the manager's webhook serves the
// certificate it finds in its directory.
func MountSecret(ctx context.Context, c client.Reader, namespace, name, dir string) {
	var last []byte
	for ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		s := &corev1.Secret{}
		if c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s) != nil || len(s.Data["tls.crt"]) == 0 ||
			bytes.Equal(s.Data["tls.crt"], last) {
			continue
		}
		written := true
		for _, file := range []string{"tls.key", "tls.crt"} { // the key first: the server reloads on the certificate
			tmp := filepath.Join(dir, "."+file)
			written = written && os.WriteFile(tmp, s.Data[file], 0o600) == nil && os.Rename(tmp, filepath.Join(dir, file)) == nil
		}
		if written {
			last = s.Data["tls.crt"]
		}
	}
}

// Webhook is the injection webhook as installed on this control plane.
type Webhook struct {
	// Configuration is its MutatingWebhookConfiguration; Secret, in
	// Namespace, is where the manager writes its certificate.
	Configuration, Namespace, Secret string
	// Port is where the manager serves it; CertDir is the manager's
	// --webhook-cert-dir, kept current by MountSecret.
	Port    int
	CertDir string
}

// InstallWebhook installs config/webhook's MutatingWebhookConfiguration,
// pointed at https://localhost:<a free port> (the control plane has no
// Service network), points the CRDs' conversion webhook there too (as
// config/crd's patch does at the webhook Service), and creates the empty
// Secret the manager writes its certificate into, in namespace (created if
// missing). The manager writes the caBundles.
func InstallWebhook(ctx context.Context, c client.Client, root, namespace, certDir string) (*Webhook, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	raw, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		return nil, err
	}
	hook := &admissionv1.MutatingWebhookConfiguration{}
	if err := yaml.Unmarshal(raw, hook); err != nil {
		return nil, err
	}
	w := &Webhook{Configuration: "exokey-pod-injection", Namespace: namespace, Secret: "exokey-webhook-server-cert", Port: port, CertDir: certDir}
	hook.Name = w.Configuration
	url := fmt.Sprintf("https://localhost:%d%s", port, *hook.Webhooks[0].ClientConfig.Service.Path)
	hook.Webhooks[0].ClientConfig = admissionv1.WebhookClientConfig{URL: &url}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	convert := fmt.Sprintf("https://localhost:%d/convert", port)
	names, err := crds.Names()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return nil, err
		}
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
			Strategy: apiextensionsv1.WebhookConverter,
			Webhook: &apiextensionsv1.WebhookConversion{
				ConversionReviewVersions: []string{"v1"},
				ClientConfig:             &apiextensionsv1.WebhookClientConfig{URL: &convert},
			},
		}
		if err := c.Update(ctx, crd); err != nil {
			return nil, err
		}
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: w.Secret, Namespace: namespace}},
		hook,
	} {
		if err := c.Create(ctx, obj); client.IgnoreAlreadyExists(err) != nil {
			return nil, err
		}
	}
	return w, nil
}

// ManagerFlags are the manager's flags to serve the webhook.
func (w *Webhook) ManagerFlags() []string {
	return []string{"--enable-injection-webhook", "--enable-conversion-webhook", "--webhook-port=" + strconv.Itoa(w.Port), "--webhook-cert-dir=" + w.CertDir,
		"--webhook-namespace=" + w.Namespace, "--webhook-secret-name=" + w.Secret,
		"--webhook-configuration-name=" + w.Configuration, "--webhook-dns-names=localhost"}
}
