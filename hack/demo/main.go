// Command demo shows exokey at work on this machine: a local control plane
// (etcd and kube-apiserver from bin/k8s), the Exoscale emulator and the
// manager binary, a ClusterKeyIssuer and an AccessKey, and the proof that
// the minted key can do what it was given and nothing else. It stays up
// until interrupted (or exits after the proof with DEMO_EXIT=1).
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/inject"
	"github.com/exokey/exokey/internal/localcluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// waitFor polls an AccessKey until done says so, for at most a minute.
func waitFor(ctx context.Context, c client.Client, ak *iamv1beta1.AccessKey, done func(*iamv1beta1.AccessKey) bool) (*iamv1beta1.AccessKey, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		got := &iamv1beta1.AccessKey{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ak), got); err != nil {
			return nil, err
		}
		if done(got) {
			return got, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("AccessKey %s/%s: still waiting after a minute: %+v", ak.Namespace, ak.Name, got.Status.Conditions)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// indent prints a command's output under its step.
// injectedPod creates a pod that asks for backup-writer, once the webhook
// answers (its certificate is issued in the first seconds), and returns it
// as admitted.
func injectedPod(ctx context.Context, c client.Client) (*corev1.Pod, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: "backups", Labels: map[string]string{inject.LabelInject: "true"},
				Annotations: map[string]string{inject.AnnotationAccessKeys: "backup-writer"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "backup", Image: "backup:1"}}},
		}
		err := c.Create(ctx, pod)
		if err == nil {
			return pod, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the injection webhook did not answer within a minute: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func indent(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return "    " + strings.Join(lines, "\n    ") + "\n"
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, _ := os.Getwd()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	workDir := filepath.Join(root, "bin", "demo")
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}

	step("starting etcd and kube-apiserver from %s", assets)
	cluster, err := localcluster.Start(root, assets, workDir)
	if err != nil {
		return err
	}
	defer func() { _ = cluster.Stop() }()
	cfg, kubeconfigPath, c := cluster.Config, cluster.Kubeconfig, cluster.Client
	fmt.Println("    API server", cfg.Host, "- CRDs installed")

	step("starting the Exoscale emulator")
	emu, err := emulator.New(emulator.Options{})
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(listener) }()
	defer server.Close()
	endpoint := "http://" + listener.Addr().String() + "/v2"
	sosListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sosServer := &http.Server{Handler: emu.SOSHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sosServer.Serve(sosListener) }()
	defer sosServer.Close()
	sosEndpoint := "http://" + sosListener.Addr().String()
	rootKey, rootSecret := emu.Root()
	fmt.Println("    endpoint", endpoint, "- SOS (S3) endpoint", sosEndpoint, "- root key", rootKey)
	for _, bucket := range []string{"backups-prod", "backups-staging"} {
		if err := s3Call(ctx, newS3(rootKey, rootSecret, sosEndpoint), "create", bucket); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
		if err := s3Call(ctx, newS3(rootKey, rootSecret, sosEndpoint), "put", bucket); err != nil {
			return err
		}
	}
	fmt.Println("    buckets backups-prod and backups-staging, made with the root key")

	// The pod injection webhook, reached by URL: this control plane has no
	// Service network, and no kubelet to mount the certificate the manager
	// writes into its Secret, so the demo copies it as a kubelet would.
	hook, err := localcluster.InstallWebhook(ctx, c, root, "exokey-system", filepath.Join(workDir, "webhook-certs"))
	if err != nil {
		return err
	}
	go localcluster.MountSecret(ctx, c, hook.Namespace, hook.Secret, hook.CertDir)

	step("starting the exokey manager (bin/manager), with the pod injection webhook")
	managerLog, err := os.Create(filepath.Join(workDir, "manager.log"))
	if err != nil {
		return err
	}
	defer managerLog.Close()
	manager := exec.Command(filepath.Join(root, "bin", "manager"), append([]string{"--kubeconfig", kubeconfigPath,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--drift-check-period=1m"}, hook.ManagerFlags()...)...)
	manager.Stdout, manager.Stderr = managerLog, managerLog
	manager.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive the demo
	if err := manager.Start(); err != nil {
		return fmt.Errorf("start the manager (run `make build`): %w", err)
	}
	defer func() { _ = manager.Process.Signal(syscall.SIGTERM); _ = manager.Wait() }()
	fmt.Println("    logs in", managerLog.Name())

	step("applying a ClusterKeyIssuer with the emulator's root key, and an AccessKey")
	objects := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "exoscale-root", Namespace: "exokey-system"},
			StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret}},
		&iamv1beta1.ClusterKeyIssuer{ObjectMeta: metav1.ObjectMeta{Name: "exoscale"}, Spec: iamv1beta1.ClusterKeyIssuerSpec{
			IssuerSpec: iamv1beta1.IssuerSpec{
				API: iamv1beta1.IssuerAPIIAMv3, Zone: "ch-gva-2", Endpoint: endpoint, SOSEndpoint: sosEndpoint, KeyNamePrefix: "k8s",
				CredentialsRef: iamv1beta1.CredentialsReference{Name: "exoscale-root", Namespace: "exokey-system"},
				Allowed:        iamv1beta1.Allowed{Operations: []string{"*-sos-*"}, Resources: []string{"sos/bucket:backups-*"}},
				// The demo's short-lived key lives 30s; the default floor is 15m.
				Limits: iamv1beta1.IssuerLimits{MinSessionTTLSeconds: ptr.To[int64](30)},
			},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"exokey.io/team": "backups"}},
		}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "backups", Labels: map[string]string{"exokey.io/team": "backups"}}},
		&iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "backup-writer", Namespace: "backups"}, Spec: iamv1beta1.AccessKeySpec{
			IssuerRef:  iamv1beta1.IssuerReference{Name: "exoscale"},
			Operations: []string{"get-sos-object", "put-sos-object", "list-sos-bucket"},
			Resources:  []string{"sos/bucket:backups-prod"},
		}},
	}
	for _, obj := range objects {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	fmt.Println("    ClusterKeyIssuer/exoscale (IAMv3, allows *-sos-* on sos/bucket:backups-*)")
	fmt.Println("    AccessKey backups/backup-writer: get-sos-object, put-sos-object, list-sos-bucket on sos/bucket:backups-prod")

	step("waiting for the AccessKey to be Ready")
	ak, err := waitFor(ctx, c, objects[len(objects)-1].(*iamv1beta1.AccessKey), func(ak *iamv1beta1.AccessKey) bool {
		return meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready")
	})
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, managerLog.Name())
	}
	fmt.Printf("    %-14s %-6s %-28s %-9s %s\n", "NAME", "READY", "KEY", "ISSUER", "SECRET")
	fmt.Printf("    %-14s %-6s %-28s %-9s %s\n", ak.Name, "True", ak.Status.KeyID, ak.Spec.IssuerRef.Name, ak.Status.SecretName)
	fmt.Printf("    key name %s, role %s\n", ak.Status.KeyName, ak.Status.RoleID)

	step("the Secret backups/%s", ak.Status.SecretName)
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "backups", Name: ak.Status.SecretName}, s); err != nil {
		return err
	}
	for _, k := range []string{"EXOSCALE_API_KEY", "EXOSCALE_API_SECRET", "EXOSCALE_ZONE", "EXOSCALE_API_ENDPOINT", "EXOSCALE_SOS_ENDPOINT"} {
		value := string(s.Data[k])
		if k == "EXOSCALE_API_SECRET" {
			value = value[:4] + strings.Repeat("*", len(value)-4)
		}
		fmt.Printf("    %-22s %s\n", k, value)
	}

	step("what the minted key may do, asked of the emulator with the key itself")
	key, secret := string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"])
	for _, probe := range []struct{ operation, bucket string }{
		{"put-sos-object", "backups-prod"}, {"get-sos-object", "backups-prod"},
		{"get-sos-object", "backups-staging"}, {"delete-sos-object", "backups-prod"}, {"list-instances", ""},
	} {
		params := map[string]string{}
		if probe.bucket != "" {
			params["bucket"] = probe.bucket
		}
		ok, err := emulator.Authorize(ctx, endpoint, key, secret, probe.operation, params)
		if err != nil {
			return err
		}
		verdict := "refused"
		if ok {
			verdict = "allowed"
		}
		fmt.Printf("    %-18s %-16s %s\n", probe.operation, probe.bucket, verdict)
	}

	step("an unmodified S3 client (the AWS SDK, SigV4) with the minted key, against the SOS endpoint")
	writer := newS3(key, secret, string(s.Data["EXOSCALE_SOS_ENDPOINT"]))
	for _, probe := range []struct{ call, bucket string }{
		{"put", "backups-prod"}, {"get", "backups-prod"}, {"list", "backups-prod"},
		{"get", "backups-staging"}, {"delete", "backups-prod"},
	} {
		verdict := "allowed"
		if err := s3Call(ctx, writer, probe.call, probe.bucket); err != nil {
			verdict = "denied: " + err.Error()
		}
		fmt.Printf("    %-16s %-16s %s\n", s3Names[probe.call], probe.bucket, verdict)
	}
	fmt.Println("    (the role's sos rule names S3 actions: " + roleRule(emu, ak.Status.RoleID) + ")")

	step("a pod that asks for backup-writer by name: what the webhook wired in")
	pod, err := injectedPod(ctx, c)
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, managerLog.Name())
	}
	fmt.Printf("    pod backups/%s (labels iam.exokey.io/inject=true, annotations iam.exokey.io/access-keys=%s)\n",
		pod.Name, pod.Annotations[inject.AnnotationAccessKeys])
	for _, container := range pod.Spec.Containers {
		for _, from := range container.EnvFrom {
			fmt.Printf("    container %-8s envFrom Secret %s\n", container.Name, from.SecretRef.Name)
		}
		for _, mount := range container.VolumeMounts {
			if strings.HasPrefix(mount.Name, "exokey-") {
				fmt.Printf("    container %-8s mounts %s read-only at %s\n", container.Name, mount.Name, mount.MountPath)
			}
		}
	}
	fmt.Printf("    recorded: iam.exokey.io/injected=%s (a new key rolls the pod's workload)\n", pod.Annotations[inject.AnnotationInjected])

	step("a short-lived AccessKey beside it: session credentials that expire after 30s, renewed before they do")
	short := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "backup-reader", Namespace: "backups"}, Spec: iamv1beta1.AccessKeySpec{
		IssuerRef:  iamv1beta1.IssuerReference{Name: "exoscale"},
		Operations: []string{"get-sos-object", "list-sos-bucket"},
		Resources:  []string{"sos/bucket:backups-prod"},
		TTLSeconds: 30,
	}}
	if err := c.Create(ctx, short); err != nil {
		return fmt.Errorf("create the short-lived AccessKey: %w", err)
	}
	first, err := waitFor(ctx, c, short, func(ak *iamv1beta1.AccessKey) bool {
		return meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready")
	})
	if err != nil {
		return err
	}
	fmt.Printf("    %-14s key %s of role %s\n", short.Name, first.Status.KeyID, first.Status.RoleID)
	fmt.Printf("    %-14s expires %s, renewed at %s\n", "", first.Status.ExpiresAt.Format(time.TimeOnly), first.Status.NextRotationAt.Format(time.TimeOnly))
	renewed, err := waitFor(ctx, c, short, func(ak *iamv1beta1.AccessKey) bool {
		return ak.Status.KeyID != first.Status.KeyID && meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready")
	})
	if err != nil {
		return err
	}
	fmt.Printf("    renewed: key %s of the same role, expires %s; %s expires by itself at %s\n", renewed.Status.KeyID,
		renewed.Status.ExpiresAt.Format(time.TimeOnly), first.Status.KeyID, first.Status.ExpiresAt.Format(time.TimeOnly))

	plugin := filepath.Join(root, "bin", "kubectl-exokey")
	for _, args := range [][]string{
		{"status", "-A"},
		{"can-i", "put-sos-object", "backup-writer", "--bucket", "backups-prod", "-n", "backups"},
		{"can-i", "delete-sos-object", "backup-writer", "--bucket", "backups-prod", "-n", "backups"},
	} {
		step("kubectl exokey %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, plugin, append(args, "--kubeconfig", kubeconfigPath)...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return fmt.Errorf("run %s (run `make build`): %w", plugin, err)
		}
		fmt.Print(indent(string(out)))
	}

	fmt.Printf("\nTry more with kubectl:\n    export KUBECONFIG=%s PATH=%s:$PATH\n    kubectl get accesskeys -A\n"+
		"    kubectl exokey operations --issuer ClusterKeyIssuer/exoscale\n"+
		"    kubectl exokey rotate backup-writer -n backups --wait\n"+
		"    kubectl -n backups edit accesskey backup-writer   # change the operations: a new key replaces the old\n"+
		"    kubectl -n backups delete accesskey backup-writer # the key is revoked\n", kubeconfigPath, filepath.Join(root, "bin"))
	if os.Getenv("DEMO_EXIT") != "" {
		return nil
	}
	fmt.Println("\nRunning until Ctrl-C.")
	<-ctx.Done()
	fmt.Println("\nstopping the manager, the emulator and the control plane")
	return nil
}
