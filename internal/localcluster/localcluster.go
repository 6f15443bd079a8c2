// Package localcluster starts a local control plane (etcd and kube-apiserver
// from bin/k8s) with exokey's CRDs installed, for the demo and the benchmark.
package localcluster

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

// Cluster is a running local control plane.
type Cluster struct {
	env *envtest.Environment
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
	c := &Cluster{env: env, Config: cfg}
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
	if err := iamv1alpha1.AddToScheme(scheme); err != nil {
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

// Stop stops the control plane.
func (c *Cluster) Stop() error { return c.env.Stop() }
