//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/localcluster"
)

// The upgrade from the last release (hack/last-release names its commit),
// built by the test from that commit, on a control plane of its own: its
// chart installed with Helm 4, AccessKeys on both APIs applied as v1alpha1
// manifests with kubectl and made Ready by its manager; then helm upgrade
// to this tree, this tree's manager, and the same checks after a rollback.
// UPGRADE_KEYS sets how many AccessKeys (20 in make test; 100 for the
// issue's size).

func upgradeKeys() int {
	if n, err := strconv.Atoi(os.Getenv("UPGRADE_KEYS")); err == nil && n > 1 {
		return n
	}
	return 20
}

// lastRelease reads hack/last-release.
func lastRelease() (version, commit string) {
	raw, err := os.ReadFile(filepath.Join(root, "hack", "last-release"))
	Expect(err).NotTo(HaveOccurred())
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			switch k {
			case "version":
				version = v
			case "commit":
				commit = v
			}
		}
	}
	Expect(commit).To(HaveLen(40), "hack/last-release names a commit")
	return version, commit
}

// upgradeCluster is the test's own control plane.
type upgradeCluster struct {
	env        *envtest.Environment
	cfg        *rest.Config
	c          client.Client
	kubeconfig string
}

func (u *upgradeCluster) tool(binary string, args ...string) string {
	GinkgoHelper()
	out, err := runTool(binary, append(args, "--kubeconfig", u.kubeconfig)...)
	Expect(err).NotTo(HaveOccurred(), "%s %s: %s", filepath.Base(binary), strings.Join(args, " "), out)
	return out
}

func (u *upgradeCluster) helm(args ...string) string {
	GinkgoHelper()
	return u.tool(filepath.Join(root, "bin", "helm4"), args...)
}

func (u *upgradeCluster) kubectl(args ...string) string {
	GinkgoHelper()
	return u.tool(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), args...)
}

// tokenFor writes a kubeconfig with a token of a ServiceAccount of the
// release namespace: the manager runs with the rights its chart gives it.
func (u *upgradeCluster) tokenFor(name string) string {
	GinkgoHelper()
	return serviceAccountKubeconfigOf(u.c, u.cfg, name, "upgrade-"+name+".kubeconfig")
}

// keyState is what must not change across an upgrade or a rollback.
type keyState struct {
	keyID, secretVersion, secretData string
}

var _ = Describe("An upgrade from the last release", Ordered, func() {
	var (
		u                 *upgradeCluster
		cloud             *cloud
		previous, current string // manager binaries
		manifests         string
		n                 = upgradeKeys()
		before            map[string]keyState
		minted, revoked   func() int
		running           *manager
	)
	const apps = "upgrade-apps"

	BeforeAll(func() {
		version, commit := lastRelease()
		By(fmt.Sprintf("building the last release, %s (%s), from its commit", version, commit[:12]))
		source := filepath.Join(workDir, "last-release")
		Expect(os.MkdirAll(source, 0o755)).To(Succeed())
		// A shallow clone fetches the commit first.
		archive := exec.Command("sh", "-c", fmt.Sprintf(`cd %[1]q && { git cat-file -e %[2]s^{commit} 2>/dev/null || git fetch --quiet --unshallow origin || git fetch --quiet origin %[2]s; } && git archive %[2]s | tar -x -C %[3]q`,
			root, commit, source))
		out, err := archive.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "git archive of the last release (a clone with its history, or one that can fetch it): %s", out)
		previous = filepath.Join(source, "bin", "manager")
		build := exec.Command("go", "build", "-o", previous, "./cmd")
		build.Dir = source
		out, err = build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		current = filepath.Join(root, "bin", "manager")

		By("starting a control plane of its own")
		u = &upgradeCluster{env: &envtest.Environment{BinaryAssetsDirectory: os.Getenv("KUBEBUILDER_ASSETS")}}
		u.cfg, err = u.env.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(u.env.Stop()).To(Succeed()) })
		scheme := runtime.NewScheme()
		Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
		Expect(iamv1alpha1.AddToScheme(scheme)).To(Succeed())
		Expect(iamv1beta1.AddToScheme(scheme)).To(Succeed())
		Expect(apiextensionsv1.AddToScheme(scheme)).To(Succeed())
		u.c, err = client.New(u.cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		admin, err := u.env.AddUser(envtest.User{Name: "upgrade-admin", Groups: []string{"system:masters"}}, nil)
		Expect(err).NotTo(HaveOccurred())
		u.kubeconfig = writeKubeconfig(admin.Config(), "upgrade-admin.kubeconfig")

		cloud = newCloud("upgrade")
		DeferCleanup(cloud.stop)
		count := func(operations ...string) func() int {
			return func() int {
				total := 0
				for _, op := range operations {
					total += cloud.total(op)
				}
				return total
			}
		}
		minted = count("create-api-key", "create-access-key", "create-iam-role")
		revoked = count("delete-api-key", "revoke-access-key", "delete-iam-role")

		By("installing the last release's chart with Helm 4, CRDs and all")
		u.helm("install", "exokey", filepath.Join(source, "dist", "chart"), "--namespace", releaseNamespace, "--create-namespace")
		Expect(u.c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "exoscale-root", Namespace: releaseNamespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": cloud.key, "EXOSCALE_API_SECRET": cloud.secret},
		})).To(Succeed())
		Expect(u.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: apps}})).To(Succeed())

		manifests = filepath.Join(workDir, "upgrade-manifests.yaml")
		var b strings.Builder
		for _, api := range []string{"IAMv3", "AccessKeyV2"} {
			fmt.Fprintf(&b, `apiVersion: iam.exokey.io/v1alpha1
kind: ClusterKeyIssuer
metadata:
  name: %[1]s
spec:
  api: %[2]s
  endpoint: %[3]s
  keyNamePrefix: up
  credentialsRef: {name: exoscale-root, namespace: %[4]s}
  allowed:
    operations: ["*-sos-*"]
    resources: ["sos/bucket:*"]
  limits: {maxGracePeriod: 2h, minRotationPeriod: 1h}
---
`, strings.ToLower(api), api, cloud.endpoint(), releaseNamespace)
		}
		for i := range n {
			issuer := []string{"iamv3", "accesskeyv2"}[i%2]
			fmt.Fprintf(&b, `apiVersion: iam.exokey.io/v1alpha1
kind: AccessKey
metadata:
  name: app-%03d
  namespace: %s
spec:
  issuerRef: {name: %s}
  operations: [get-sos-object, list-sos-bucket]
  resources: ["sos/bucket:app-%03d"]
  rotation: {every: 720h, gracePeriod: 90s}
---
`, i, apps, issuer, i)
		}
		Expect(os.WriteFile(manifests, []byte(b.String()), 0o600)).To(Succeed())
	})

	// state reads what must not change: each AccessKey's key and Secret,
	// at v1alpha1 (served by every version of the CRDs in this test).
	state := func() map[string]keyState {
		GinkgoHelper()
		list := &iamv1alpha1.AccessKeyList{}
		Expect(u.c.List(ctx, list, client.InNamespace(apps))).To(Succeed())
		out := map[string]keyState{}
		for _, ak := range list.Items {
			s := &corev1.Secret{}
			Expect(u.c.Get(ctx, client.ObjectKey{Namespace: apps, Name: ak.Name}, s)).To(Succeed())
			sum := sha256.New()
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range s.Data {
					if !yield(k) {
						return
					}
				}
			}) {
				fmt.Fprintf(sum, "%s=%x;", k, s.Data[k])
			}
			out[ak.Name] = keyState{keyID: ak.Status.KeyID, secretVersion: s.ResourceVersion, secretData: fmt.Sprintf("%x", sum.Sum(nil))}
		}
		return out
	}

	// allReadyAt waits until every AccessKey reads Ready at its generation
	// at version (the previous manager reads v1alpha1 alone).
	allReadyAt := func(version string, want int) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			var notReady []string
			switch version {
			case "v1alpha1":
				list := &iamv1alpha1.AccessKeyList{}
				g.Expect(u.c.List(ctx, list, client.InNamespace(apps))).To(Succeed())
				g.Expect(list.Items).To(HaveLen(want))
				for _, ak := range list.Items {
					if c := meta.FindStatusCondition(ak.Status.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionTrue ||
						ak.Status.ObservedGeneration != ak.Generation || c.ObservedGeneration != ak.Generation {
						notReady = append(notReady, ak.Name)
					}
				}
			default:
				list := &iamv1beta1.AccessKeyList{}
				g.Expect(u.c.List(ctx, list, client.InNamespace(apps))).To(Succeed())
				g.Expect(list.Items).To(HaveLen(want))
				for _, ak := range list.Items {
					if c := meta.FindStatusCondition(ak.Status.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionTrue ||
						ak.Status.ObservedGeneration == nil || *ak.Status.ObservedGeneration != ak.Generation || c.ObservedGeneration != ak.Generation {
						notReady = append(notReady, ak.Name)
					}
				}
			}
			g.Expect(notReady).To(BeEmpty())
		}, 3*time.Minute, 500*time.Millisecond).Should(Succeed())
	}

	startPrevious := func() *manager {
		return startManagerFrom("upgrade-previous", previous, "--kubeconfig="+u.tokenFor(serviceAccount), "--drift-check-period=5s")
	}

	It("runs the last release's AccessKeys to Ready on both APIs", func() {
		u.kubectl("apply", "-f", manifests)
		running = startPrevious()
		allReadyAt("v1alpha1", n)
		before = state()
		Expect(before).To(HaveLen(n))
		Expect(minted()).To(BeNumerically(">=", n))
		AddReportEntry("last release", fmt.Sprintf("%d AccessKeys Ready (%d on IAMv3, %d on AccessKeyV2), %d mints", n, (n+1)/2, n/2, minted()))
	})

	It("is upgraded with helm upgrade: no key minted or revoked, every Secret unchanged, every object stored at v1beta1", func() {
		running.stop()
		mintedBefore, revokedBefore := minted(), revoked()

		By("helm upgrade to this tree's chart (--take-ownership: the last release installed its CRDs from crds/, outside the release)")
		u.helm("upgrade", "exokey", filepath.Join(root, "dist", "chart"), "--namespace", releaseNamespace, "--take-ownership")
		crds := &apiextensionsv1.CustomResourceDefinitionList{}
		Expect(u.c.List(ctx, crds)).To(Succeed())
		port := freePort()
		for i := range crds.Items {
			crd := &crds.Items[i]
			Expect(crd.Spec.Versions).To(HaveLen(2), "helm upgrade brought the CRD with v1beta1")
			Expect(crd.Annotations).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
			// The test plays the Service network: the API server reaches the webhook by URL.
			url := fmt.Sprintf("https://localhost:%d/convert", port)
			crd.Spec.Conversion.Webhook.ClientConfig = &apiextensionsv1.WebhookClientConfig{URL: &url}
			Expect(u.c.Update(ctx, crd)).To(Succeed())
		}

		By("running this tree's manager as the upgraded chart's ServiceAccount, serving the conversion webhook")
		certDir := filepath.Join(workDir, "upgrade-certs")
		Expect(os.MkdirAll(certDir, 0o700)).To(Succeed())
		mountCtx, stopMount := context.WithCancel(ctx)
		DeferCleanup(stopMount)
		go localcluster.MountSecret(mountCtx, u.c, releaseNamespace, "exokey-webhook-cert", certDir)
		running = startManagerFrom("upgrade-current", current, "--kubeconfig="+u.tokenFor(serviceAccount), "--drift-check-period=5s",
			"--enable-conversion-webhook", "--webhook-port="+strconv.Itoa(port),
			"--webhook-cert-dir="+certDir, "--webhook-namespace="+releaseNamespace, "--webhook-service-name=exokey-webhook",
			"--webhook-secret-name=exokey-webhook-cert", "--webhook-dns-names=localhost", "--crd-check-period=2s")

		Eventually(func(g Gomega) {
			list := &apiextensionsv1.CustomResourceDefinitionList{}
			g.Expect(u.c.List(ctx, list)).To(Succeed())
			for _, crd := range list.Items {
				g.Expect(crd.Status.StoredVersions).To(Equal([]string{"v1beta1"}), crd.Name)
			}
		}, 2*time.Minute, 500*time.Millisecond).Should(Succeed(), "every object rewritten at v1beta1, storedVersions trimmed; %s", describe(running))
		allReadyAt("v1beta1", n)
		// Two drift periods: a manager that meant to replace keys would have.
		Consistently(func() []int { return []int{minted() - mintedBefore, revoked() - revokedBefore} }, 12*time.Second, time.Second).
			Should(Equal([]int{0, 0}), "keys minted and revoked since the upgrade")
		Expect(state()).To(Equal(before), "every key and Secret as the last release left them")
		Expect(running.logText()).To(ContainSubstring("stored objects moved to the storage version"))

		By("applying the v1alpha1 manifests again, and a new v1alpha1 AccessKey")
		out := u.kubectl("apply", "-f", manifests)
		Expect(strings.Count(out, "unchanged")).To(Equal(n+2), out)
		Expect(state()).To(Equal(before))
		extra := filepath.Join(workDir, "upgrade-extra.yaml")
		Expect(os.WriteFile(extra, []byte(fmt.Sprintf(`apiVersion: iam.exokey.io/v1alpha1
kind: AccessKey
metadata:
  name: after-upgrade
  namespace: %s
spec:
  issuerRef: {name: iamv3}
  operations: [get-sos-object]
  resources: ["sos/bucket:after-upgrade"]
  rotation: {every: 720h}
`, apps)), 0o600)).To(Succeed())
		u.kubectl("apply", "-f", extra)
		allReadyAt("v1beta1", n+1)
		Expect(minted()-mintedBefore).To(Equal(2), "the new AccessKey's role and key, nothing else")
		Expect(revoked() - revokedBefore).To(BeZero())
		before = state()
		AddReportEntry("upgrade", fmt.Sprintf("%d AccessKeys Ready at v1beta1; 0 minted, 0 revoked, %d Secrets unchanged; v1alpha1 manifests apply (%d unchanged, 1 new)",
			n, n, n+2))
	})

	It("rolls back to the last release: kubectl exokey migrate --storage-version v1alpha1, then helm rollback", func() {
		mintedBefore, revokedBefore := minted(), revoked()
		out := u.tool(filepath.Join(root, "bin", "kubectl-exokey"), "migrate", "--storage-version", "v1alpha1")
		GinkgoWriter.Println(out)
		running.stop()
		u.helm("rollback", "exokey", "1", "--namespace", releaseNamespace)
		crd := &apiextensionsv1.CustomResourceDefinition{}
		Expect(u.c.Get(ctx, client.ObjectKey{Name: "accesskeys.iam.exokey.io"}, crd)).To(Succeed())
		Expect(crd.Status.StoredVersions).To(Equal([]string{"v1alpha1"}))

		running = startPrevious()
		DeferCleanup(func() { running.stop() })
		allReadyAt("v1alpha1", n+1)
		Consistently(func() []int { return []int{minted() - mintedBefore, revoked() - revokedBefore} }, 12*time.Second, time.Second).
			Should(Equal([]int{0, 0}), "keys minted and revoked since the rollback")
		Expect(state()).To(Equal(before), "every key and Secret as this tree left them")
		AddReportEntry("rollback", fmt.Sprintf("%d AccessKeys Ready at v1alpha1 under the last release; 0 minted, 0 revoked, %d Secrets unchanged", n+1, n+1))
	})
})
