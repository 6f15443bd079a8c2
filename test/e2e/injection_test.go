//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/exokey/exokey/internal/inject"
	"github.com/exokey/exokey/internal/localcluster"
)

// The injection webhook on real binaries, from the chart's manifests: the
// API server calls the manager's webhook over TLS with the certificate the
// manager issued itself and the caBundle it wrote. The test plays the
// kubelet's part: it copies the webhook's Secret into the manager's
// certificate directory, as a mounted Secret volume is kept current.
var _ = Describe("The injection webhook", Ordered, func() {
	const (
		configuration = "exokey-pod-injection"
		secretName    = "exokey-webhook-cert"
		validity      = 30 * time.Second // renewed a fifth of it, 6 s, before it expires
	)
	var (
		m       *manager
		certDir string
		port    int
		// stopMount stops copying the Secret (the kubelet's part).
		stopMount context.CancelFunc
	)
	// webhookManager runs a manager serving the webhook on webhookPort,
	// its health probes on healthPort (0: any).
	webhookManager := func(name string, leaderElect bool, webhookPort, healthPort int) *manager {
		return startManager(name, "--drift-check-period=5s", "--leader-elect="+strconv.FormatBool(leaderElect),
			"--enable-injection-webhook", "--webhook-port="+strconv.Itoa(webhookPort), "--webhook-cert-dir="+certDir,
			"--webhook-namespace="+releaseNamespace, "--webhook-service-name=exokey-webhook", "--webhook-secret-name="+secretName,
			"--webhook-configuration-name="+configuration, "--webhook-cert-validity="+validity.String(), "--webhook-dns-names=localhost",
			"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(healthPort))
	}
	startWebhookManager := func(name string) *manager { return webhookManager(name, false, port, 0) }

	BeforeAll(func() {
		certDir = filepath.Join(workDir, "webhook-certs")
		Expect(os.MkdirAll(certDir, 0o700)).To(Succeed())
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		port = l.Addr().(*net.TCPAddr).Port
		Expect(l.Close()).To(Succeed())

		By("applying the chart's webhook configuration and its empty Secret, reached by URL (no Service network here)")
		for _, obj := range renderChart("--show-only", "templates/webhook.yaml") {
			switch obj.GetKind() {
			case "MutatingWebhookConfiguration":
				hook := &admissionv1.MutatingWebhookConfiguration{}
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, hook)).To(Succeed())
				Expect(hook.Name).To(Equal(configuration))
				url := fmt.Sprintf("https://localhost:%d%s", port, inject.Path)
				hook.Webhooks[0].ClientConfig = admissionv1.WebhookClientConfig{URL: &url}
				Expect(k8sClient.Create(ctx, hook)).To(Succeed())
			case "Secret":
				Expect(obj.GetName()).To(Equal(secretName))
				Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			}
		}
		var mountCtx context.Context
		mountCtx, stopMount = context.WithCancel(ctx)
		go localcluster.MountSecret(mountCtx, k8sClient, releaseNamespace, secretName, certDir)
		m = startWebhookManager("manager-webhook")
	})
	AfterAll(func() {
		stopMount()
		if m != nil {
			m.kill()
		}
		Expect(k8sClient.Delete(ctx, &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: configuration}})).To(Succeed())
	})

	It("issues its certificate, writes the caBundle, and injects a pod that asks", func() {
		Eventually(func() []byte { return caBundle(configuration) }, timeout, poll).ShouldNot(BeEmpty())
		Eventually(func() error { return servesCertificateOf(port, caBundle(configuration)) }, timeout, poll).Should(Succeed())
		namespace := newNamespace()
		newAccessKey(namespace, "creds")
		pod := injectedPod(namespace, "app")
		Expect(pod.Spec.Containers[0].EnvFrom).To(ConsistOf(HaveField("SecretRef.Name", "creds")))
		Expect(pod.Annotations).To(HaveKeyWithValue(inject.AnnotationInjected, "creds"))
	})

	It("renews its certificate before it expires, serves the new one, and admission goes on", func() {
		// Certificates are told apart by their expiry: the rotator numbers
		// every serving certificate 1.
		first := servingCertificate(port)
		AddReportEntry("serving certificate", fmt.Sprintf("expires %s", first.NotAfter.Format(time.RFC3339)))
		Eventually(func() time.Time { return servingCertificate(port).NotAfter }, 2*validity, poll).
			Should(BeTemporally(">", first.NotAfter), "the certificate was not renewed")
		renewed := servingCertificate(port)
		Expect(time.Now()).To(BeTemporally("<", first.NotAfter), "renewed only after the first expired")
		Expect(servesCertificateOf(port, caBundle(configuration))).To(Succeed(), "the caBundle does not verify the renewed certificate")
		AddReportEntry("renewed", fmt.Sprintf("expires %s, served %s before the first expired", renewed.NotAfter.Format(time.RFC3339),
			time.Until(first.NotAfter).Round(time.Second)))
		namespace := newNamespace()
		newAccessKey(namespace, "creds")
		Expect(injectedPod(namespace, "after-renewal").Spec.Containers[0].EnvFrom).To(HaveLen(1))
	})

	It("serves on every replica: a standby serves the certificate and is Ready by its own state, beside the leader", func() {
		m.kill()
		healths, ports := []int{freePort(), freePort()}, []int{port, freePort()}
		started := time.Now()
		replicas := []*manager{
			webhookManager("manager-webhook-replica-a", true, ports[0], healths[0]),
			webhookManager("manager-webhook-replica-b", true, ports[1], healths[1]),
		}
		for i, r := range replicas {
			DeferCleanup(r.kill)
			Eventually(func() error { return readyz(healths[i]) }, timeout, poll).Should(Succeed(), describe(r))
			Expect(servesCertificateOf(ports[i], caBundle(configuration))).To(Succeed(), "%s serves the certificate", describe(r))
		}
		AddReportEntry("both replicas Ready", time.Since(started).Round(100*time.Millisecond).String())
		// A lease left by a killed manager is taken once it expires: one
		// replica leads, the other stays a standby, Ready all along.
		leaders := func() int {
			n := 0
			for _, r := range replicas {
				if strings.Contains(r.logText(), "Successfully acquired lease") {
					n++
				}
			}
			return n
		}
		Eventually(leaders, timeout, poll).Should(Equal(1), "one replica leads")
		Consistently(leaders, 2*time.Second, poll).Should(Equal(1), "the other is a standby")
		for i := range replicas {
			Expect(readyz(healths[i])).To(Succeed(), "leader or standby, each Ready")
		}
		for _, r := range replicas {
			r.kill()
		}
		m = startWebhookManager("manager-webhook-after-replicas")
		Eventually(func() error { return servesCertificateOf(port, caBundle(configuration)) }, timeout, poll).Should(Succeed())
	})

	It("keeps admission working across a manager restart, and refuses opted-in pods while it is down", func() {
		namespace := newNamespace()
		newAccessKey(namespace, "creds")
		m.kill()
		// failurePolicy Fail: a pod that asked for credentials does not start without them.
		err := k8sClient.Create(ctx, optedInPod(namespace, "while-down"))
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("pods.inject.iam.exokey.io"))
		m = startWebhookManager("manager-webhook-restarted")
		Eventually(func() error { return admitsInjected(namespace, "after-restart") }, timeout, poll).Should(Succeed())
	})

	It("admits opted-in pods at once while template bombs exist, served by the same process", func() {
		namespace := newNamespace()
		applyTemplateBombs(namespace, m)
		newAccessKey(namespace, "creds")
		// Admitted at all means answered within the configuration's
		// timeoutSeconds (10): the bound is the API server's.
		var slowest time.Duration
		for i := range 5 {
			started := time.Now()
			pod := injectedPod(namespace, fmt.Sprintf("beside-the-bombs-%d", i))
			slowest = max(slowest, time.Since(started))
			Expect(pod.Spec.Containers[0].EnvFrom).To(ConsistOf(HaveField("SecretRef.Name", "creds")))
		}
		AddReportEntry("opted-in pods beside three template bombs", fmt.Sprintf("5 admitted and injected, the slowest in %s",
			slowest.Round(time.Millisecond)))
	})

	It("runs apart from the controllers, as a ServiceAccount that can touch no Secret", func() {
		m.kill()
		By("the controllers issuing the certificate, and the webhook alone serving it with its own token")
		metricsPort := freePort()
		controllers := startManager("manager-controllers", "--drift-check-period=5s", "--mode=controllers", "--enable-injection-webhook",
			"--webhook-cert-dir="+certDir, "--webhook-namespace="+releaseNamespace, "--webhook-service-name=exokey-webhook",
			"--webhook-secret-name="+secretName, "--webhook-configuration-name="+configuration,
			"--webhook-dns-names=localhost,"+metricsService, "--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metricsPort),
			"--metrics-cert-dir="+certDir)
		DeferCleanup(controllers.kill)
		health := freePort()
		hook := startManager("webhook-only", "--kubeconfig="+webhookKubeconfig, "--mode=webhook", "--webhook-port="+strconv.Itoa(port),
			"--webhook-cert-dir="+certDir, "--webhook-namespace="+releaseNamespace, "--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(health))
		DeferCleanup(hook.kill)
		Eventually(func() error { return readyz(health) }, timeout, poll).Should(Succeed(), describe(hook))
		namespace := newNamespace()
		newAccessKey(namespace, "creds")
		Eventually(func() error { return admitsInjected(namespace, "from-the-webhook-deployment") }, timeout, poll).Should(Succeed())
		Expect(hook.forbidden()).To(BeEmpty(), "the webhook needed nothing its role does not grant")

		By("the controllers' metrics endpoint serving the issued certificate, as the chart's ServiceMonitor verifies it")
		Eventually(func() error { return servesCertificateFor(metricsPort, caBundle(configuration), metricsService) }, timeout, poll).
			Should(Succeed(), describe(controllers))
		Expect(hook.logText()).NotTo(ContainSubstring("Successfully acquired lease"), "the webhook leads nothing")

		By("asking the API server what each token may do (SelfSubjectAccessReview)")
		webhookToken, managerToken := clientFor(webhookKubeconfig), clientFor(managerKubeconfig)
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			Expect(mayDo(webhookToken, verb, "", "secrets", namespace)).To(BeFalse(), "the webhook's token may %s Secrets", verb)
		}
		for _, verb := range []string{"patch", "update"} {
			Expect(mayDo(webhookToken, verb, "apps", "deployments", namespace)).To(BeFalse(), "the webhook's token may %s Deployments", verb)
			Expect(mayDo(webhookToken, verb, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "")).To(BeFalse())
		}
		Expect(mayDo(webhookToken, "list", "iam.exokey.io", "accesskeys", namespace)).To(BeTrue(), "the review tells rights apart")
		Expect(mayDo(managerToken, "create", "", "secrets", namespace)).To(BeTrue(), "the controllers' token writes Secrets")
		AddReportEntry("webhook's token", "no verb on Secrets, no write on workloads or webhook configurations; reads AccessKeys")
	})
})

// clientFor is a client authenticated by a kubeconfig the suite wrote.
func clientFor(kubeconfig string) client.Client {
	GinkgoHelper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// mayDo asks the API server whether c's identity may do verb on a resource
// (SelfSubjectAccessReview).
func mayDo(c client.Client, verb, group, resource, namespace string) bool {
	GinkgoHelper()
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: namespace},
	}}
	Expect(c.Create(ctx, review)).To(Succeed())
	return review.Status.Allowed
}

func optedInPod(namespace, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{inject.LabelInject: "true"},
			Annotations: map[string]string{inject.AnnotationAccessKeys: "creds"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
}

// admitsInjected creates an opted-in pod and checks it was injected.
func admitsInjected(namespace, name string) error {
	pod := optedInPod(namespace, name)
	if err := k8sClient.Create(ctx, pod); err != nil {
		return err
	}
	if len(pod.Spec.Containers[0].EnvFrom) != 1 {
		return fmt.Errorf("not injected: %+v", pod.Spec.Containers[0])
	}
	return nil
}

func injectedPod(namespace, name string) *corev1.Pod {
	pod := optedInPod(namespace, name)
	ExpectWithOffset(1, k8sClient.Create(ctx, pod)).To(Succeed())
	return pod
}

func caBundle(configuration string) []byte {
	hook := &admissionv1.MutatingWebhookConfiguration{}
	if k8sClient.Get(ctx, client.ObjectKey{Name: configuration}, hook) != nil || len(hook.Webhooks) == 0 {
		return nil
	}
	return hook.Webhooks[0].ClientConfig.CABundle
}

// servingCertificate is the certificate the webhook presents now.
func servingCertificate(port int) *x509.Certificate {
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // read, then verified
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// servesCertificateOf checks the webhook's certificate against a CA bundle,
// for the name the API server dials.
func servesCertificateOf(port int, bundle []byte) error {
	return servesCertificateFor(port, bundle, "localhost")
}

// metricsService is the name the chart's ServiceMonitor verifies the
// controllers' metrics certificate for.
const metricsService = "exokey-metrics.exokey-system.svc"

// servesCertificateFor checks the certificate served on port against a CA
// bundle, for a server name.
func servesCertificateFor(port int, bundle []byte, serverName string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return fmt.Errorf("no CA in the caBundle")
	}
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: serverName})
	if err != nil {
		return err
	}
	return conn.Close()
}

// freePort is a port nothing listens on now.
func freePort() int {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// readyz asks a manager's readiness probe.
func readyz(healthPort int) error {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("readyz %d: %s", resp.StatusCode, body)
	}
	return nil
}
