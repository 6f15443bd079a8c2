//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v3 "github.com/exoscale/egoscale/v3"
	"github.com/exoscale/egoscale/v3/credentials"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
)

// The chaos suite: what a platform team meets in its second week, on real
// binaries. Its sizes fit CI; CHAOS_FULL=1 (make test-chaos) runs the full
// ones.

type chaosSize struct{ keys, kills, churn int }

func sizeOfChaos() chaosSize {
	if os.Getenv("CHAOS_FULL") != "" {
		return chaosSize{keys: 1000, kills: 20, churn: 5000}
	}
	return chaosSize{keys: 200, kills: 8, churn: 1000}
}

// cloud is one emulator process with its state on disk, on a fixed port,
// so it can go away and come back with everything it held.
type cloud struct {
	name, listen, state, key, secret string
	flags                            []string
	cmd                              *exec.Cmd
	// served sums the stats of earlier lives of the process.
	served emulator.Stats
}

func newCloud(name string, flags ...string) *cloud {
	c := &cloud{name: name, listen: freeAddress(), state: filepath.Join(workDir, name+".json"),
		key: "EXO" + strings.Repeat("c", 24), secret: "chaos-root-secret-" + name, flags: flags}
	c.start()
	return c
}

func freeAddress() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().String()
}

func (c *cloud) endpoint() string { return "http://" + c.listen + "/v2" }

func (c *cloud) start() {
	args := append([]string{"--listen", c.listen, "--state", c.state, "--root-key", c.key, "--root-secret", c.secret, "--quiet"}, c.flags...)
	cmd := exec.Command(filepath.Join(root, "bin", "exoscale-emulator"), args...)
	stdout, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	Expect(cmd.Start()).To(Succeed())
	_, err = bufio.NewReader(stdout).ReadString('\n')
	Expect(err).NotTo(HaveOccurred(), "the emulator %s starts", c.name)
	c.cmd = cmd
}

// stop takes the emulator away (its state is on disk).
func (c *cloud) stop() {
	stats := c.stats()
	c.served.Total += stats.Total
	if c.served.Operations == nil {
		c.served.Operations = map[string]int{}
	}
	for op, n := range stats.Operations {
		c.served.Operations[op] += n
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
}

// stats are the calls served since the process started.
func (c *cloud) stats() emulator.Stats {
	resp, err := http.Get("http://" + c.listen + "/_emulator/stats")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var s emulator.Stats
	Expect(json.NewDecoder(resp.Body).Decode(&s)).To(Succeed())
	return s
}

// total is the calls of every life of the process, by operation ("" for all).
func (c *cloud) total(operation string) int {
	now := c.stats()
	if operation == "" {
		return c.served.Total + now.Total
	}
	return c.served.Operations[operation] + now.Operations[operation]
}

// liveKeys lists the API keys of the emulator whose name starts with prefix.
func (c *cloud) liveKeys(prefix string) map[string]bool {
	client, err := v3.NewClient(credentials.NewStaticCredentials(c.key, c.secret),
		v3.ClientOptWithEndpoint(v3.Endpoint(c.endpoint())), v3.ClientOptWithHTTPClient(http.DefaultClient))
	Expect(err).NotTo(HaveOccurred())
	keys, err := client.ListAPIKeys(ctx)
	Expect(err).NotTo(HaveOccurred())
	live := map[string]bool{}
	for _, k := range keys.APIKeys {
		if strings.HasPrefix(k.Name, prefix) {
			live[k.Key] = true
		}
	}
	return live
}

// issuer makes a ClusterKeyIssuer of the cloud's root key, allowing SOS.
func (c *cloud) issuer(name string, mutate ...func(*iamv1beta1.ClusterKeyIssuer)) *iamv1beta1.ClusterKeyIssuer {
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-credentials", Namespace: releaseNamespace},
		StringData: map[string]string{"EXOSCALE_API_KEY": c.key, "EXOSCALE_API_SECRET": c.secret},
	})).To(Succeed())
	iss := &iamv1beta1.ClusterKeyIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: iamv1beta1.ClusterKeyIssuerSpec{IssuerSpec: iamv1beta1.IssuerSpec{
			API: iamv1beta1.IssuerAPIIAMv3, Endpoint: c.endpoint(), KeyNamePrefix: name,
			CredentialsRef: iamv1beta1.CredentialsReference{Name: name + "-credentials", Namespace: releaseNamespace},
			Allowed:        iamv1beta1.Allowed{Operations: []string{"*-sos-*"}, Resources: []string{"sos/bucket:*"}},
		}},
	}
	for _, m := range mutate {
		m(iss)
	}
	Expect(k8sClient.Create(ctx, iss)).To(Succeed())
	return iss
}

func (c *cloud) works(s *corev1.Secret) bool {
	ok, err := emulator.Authorize(ctx, c.endpoint(), string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]),
		"get-sos-object", map[string]string{"bucket": "e2e"})
	return err == nil && ok
}

func accessKeyOn(namespace, name, issuer string, mutate ...func(*iamv1beta1.AccessKey)) *iamv1beta1.AccessKey {
	ak := &iamv1beta1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: iamv1beta1.AccessKeySpec{
			IssuerRef:  iamv1beta1.IssuerReference{Name: issuer},
			Operations: []string{"get-sos-object"},
			Resources:  []string{"sos/bucket:e2e"},
		},
	}
	for _, m := range mutate {
		m(ak)
	}
	Expect(k8sClient.Create(ctx, ak)).To(Succeed())
	return ak
}

func syncedReason(ak *iamv1beta1.AccessKey) string {
	got := &iamv1beta1.AccessKey{}
	if k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got) != nil {
		return ""
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, "Synced"); c != nil {
		return c.Reason
	}
	return ""
}

func gone(obj client.Object) bool {
	return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object)))
}

// liveHeap is a manager's live heap: HeapAlloc right after a collection,
// which the pprof endpoint runs on request.
func liveHeap(address string) float64 {
	resp, err := http.Get("http://" + address + "/debug/pprof/heap?gc=1&debug=1")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for scanner.Scan() {
		if value, ok := strings.CutPrefix(scanner.Text(), "# HeapAlloc = "); ok {
			v, err := strconv.ParseFloat(value, 64)
			Expect(err).NotTo(HaveOccurred())
			return v
		}
	}
	Fail("no HeapAlloc in the heap profile")
	return 0
}

// heapTop is the top of a manager's heap profile, as go tool pprof shows it.
func heapTop(address string) string {
	resp, err := http.Get("http://" + address + "/debug/pprof/heap?gc=1")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	profile := filepath.Join(workDir, "heap-after-churn.pb.gz")
	out, err := os.Create(profile)
	Expect(err).NotTo(HaveOccurred())
	_, err = io.Copy(out, resp.Body)
	Expect(err).NotTo(HaveOccurred())
	Expect(out.Close()).To(Succeed())
	top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=12", "-sample_index=inuse_space", profile).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v", err)
	}
	return string(top)
}

// managerMetrics scrapes a manager's metrics endpoint.
func managerMetrics(address string) map[string]float64 {
	resp, err := http.Get("http://" + address + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	values := map[string]float64{}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			values[line[:i]] += v
		}
	}
	return values
}

// sum adds the series of a metric whose labels contain every one of parts.
func sum(values map[string]float64, name string, parts ...string) float64 {
	total := 0.0
	for series, v := range values {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		matched := true
		for _, p := range parts {
			matched = matched && strings.Contains(series, p)
		}
		if matched {
			total += v
		}
	}
	return total
}

// writes counts the manager's write requests to the API server.
func writes(values map[string]float64) float64 {
	n := 0.0
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		n += sum(values, "rest_client_requests_total", `method="`+method+`"`)
	}
	return n
}

var _ = Describe("exokey under failure", Ordered, Label("chaos"), func() {
	var (
		healthy      *cloud
		mgr          *manager
		metricsAddr  string
		pprofAddr    string
		managerFlags []string
		size         = sizeOfChaos()
	)
	startChaosManager := func(name string, extra ...string) {
		metricsAddr, pprofAddr = freeAddress(), freeAddress()
		flags := append([]string{"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false", "--pprof-bind-address=" + pprofAddr},
			managerFlags...)
		cmd := start(name, filepath.Join(root, "bin", "manager"), append([]string{"--kubeconfig=" + managerKubeconfig,
			"--health-probe-bind-address=0"}, append(flags, extra...)...)...)
		mgr = &manager{cmd: cmd, log: filepath.Join(workDir, name+".log")}
		Eventually(func() map[string]float64 { return managerMetrics(metricsAddr) }, timeout, poll).ShouldNot(BeEmpty())
	}
	BeforeAll(func() {
		healthy = newCloud("chaos")
		healthy.issuer("chaos")
		// Default flags, but a short revoke timeout and one process (no
		// leader election), so kills are followed at once by a new leader.
		managerFlags = []string{"--revoke-timeout=20s", "--leader-election-namespace=" + releaseNamespace}
		startChaosManager("chaos-manager")
		DeferCleanup(func() {
			mgr.kill()
			healthy.stop()
		})
	})

	waitReady := func(ak *iamv1beta1.AccessKey, within time.Duration) time.Duration {
		started := time.Now()
		EventuallyWithOffset(1, func() bool { return ready(ak) }, within, 100*time.Millisecond).Should(BeTrue(),
			"%s/%s (Synced reason %q): %s", ak.Namespace, ak.Name, syncedReason(ak), describe(mgr))
		return time.Since(started)
	}
	waitRefused := func(ak *iamv1beta1.AccessKey, reason string) {
		EventuallyWithOffset(1, func() string { return syncedReason(ak) }, timeout, poll).Should(Equal(reason), describe(mgr))
	}

	// 1. Refusals heal by themselves.
	It("makes refused AccessKeys Ready within seconds of the fix, with no edit of the AccessKey", func() {
		namespace := newNamespace()
		healed := map[string]time.Duration{}

		By("SecretConflict: the conflicting Secret is deleted")
		taken := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: namespace}, StringData: map[string]string{"x": "y"}}
		Expect(k8sClient.Create(ctx, taken)).To(Succeed())
		conflict := accessKeyOn(namespace, "taken", "chaos")
		waitRefused(conflict, "SecretConflict")
		Expect(k8sClient.Delete(ctx, taken)).To(Succeed())
		healed["SecretConflict"] = waitReady(conflict, 30*time.Second)

		By("IssuerNotFound: the issuer is created")
		early := accessKeyOn(namespace, "early", "chaos-later")
		waitRefused(early, "IssuerNotFound")
		started := time.Now()
		healthy.issuer("chaos-later")
		waitReady(early, 30*time.Second)
		healed["IssuerNotFound"] = time.Since(started)

		By("IssuerNotReady: the issuer's credentials Secret is created")
		Expect(k8sClient.Create(ctx, &iamv1beta1.ClusterKeyIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-nocreds"},
			Spec: iamv1beta1.ClusterKeyIssuerSpec{IssuerSpec: iamv1beta1.IssuerSpec{
				API: iamv1beta1.IssuerAPIIAMv3, Endpoint: healthy.endpoint(), KeyNamePrefix: "chaos-nocreds",
				CredentialsRef: iamv1beta1.CredentialsReference{Name: "chaos-nocreds-credentials", Namespace: releaseNamespace},
				Allowed:        iamv1beta1.Allowed{Operations: []string{"*-sos-*"}, Resources: []string{"sos/bucket:*"}},
			}},
		})).To(Succeed())
		waiting := accessKeyOn(namespace, "waiting", "chaos-nocreds")
		waitRefused(waiting, "IssuerNotReady")
		started = time.Now()
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-nocreds-credentials", Namespace: releaseNamespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": healthy.key, "EXOSCALE_API_SECRET": healthy.secret},
		})).To(Succeed())
		waitReady(waiting, 45*time.Second)
		healed["IssuerNotReady"] = time.Since(started)

		By("NotPermitted: the namespace is relabelled")
		healthy.issuer("chaos-selective", func(iss *iamv1beta1.ClusterKeyIssuer) {
			iss.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"exokey-chaos": "allowed"}}
		})
		outside := accessKeyOn(namespace, "outside", "chaos-selective")
		waitRefused(outside, "NotPermitted")
		started = time.Now()
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: namespace}, ns)).To(Succeed())
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels["exokey-chaos"] = "allowed"
		Expect(k8sClient.Update(ctx, ns)).To(Succeed())
		waitReady(outside, 30*time.Second)
		healed["NotPermitted (namespace)"] = time.Since(started)

		By("NotPermitted: the issuer's allowed operations grow")
		narrow := healthy.issuer("chaos-narrow", func(iss *iamv1beta1.ClusterKeyIssuer) {
			iss.Spec.Allowed.Operations = []string{"list-sos-buckets"}
		})
		beyond := accessKeyOn(namespace, "beyond", "chaos-narrow")
		waitRefused(beyond, "NotPermitted")
		started = time.Now()
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(narrow), narrow)).To(Succeed())
		narrow.Spec.Allowed.Operations = []string{"*-sos-*"}
		Expect(k8sClient.Update(ctx, narrow)).To(Succeed())
		waitReady(beyond, 30*time.Second)
		healed["NotPermitted (issuer)"] = time.Since(started)

		for _, ak := range []*iamv1beta1.AccessKey{conflict, early, waiting, outside, beyond} {
			Expect(healthy.works(secretOf(ak))).To(BeTrue(), ak.Name)
		}
		AddReportEntry("refusals healed", fmt.Sprint(healed))
		for reason, took := range healed {
			Expect(took).To(BeNumerically("<", 30*time.Second), reason)
		}
	})

	// 2. Deletion always completes.
	It("deletes an AccessKey whose ClusterKeyIssuer and credentials were deleted first, revoking its keys", func() {
		namespace := newNamespace()
		doomed := healthy.issuer("chaos-doomed")
		var aks []*iamv1beta1.AccessKey
		for i := range 3 {
			aks = append(aks, accessKeyOn(namespace, fmt.Sprintf("doomed-%d", i), doomed.Name))
		}
		for _, ak := range aks {
			waitReady(ak, timeout)
		}
		Expect(healthy.liveKeys("chaos-doomed-")).To(HaveLen(3))

		Expect(k8sClient.Delete(ctx, doomed)).To(Succeed())
		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chaos-doomed-credentials", Namespace: releaseNamespace}})).To(Succeed())
		Consistently(func() bool { return gone(doomed) }, 3*time.Second, poll).Should(BeFalse(), "the issuer waits for its AccessKeys")
		Eventually(func() string {
			got := &iamv1beta1.ClusterKeyIssuer{}
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(doomed), got)
			if c := meta.FindStatusCondition(got.Status.Conditions, "Ready"); c != nil {
				return c.Reason
			}
			return ""
		}, timeout, poll).Should(Equal("InUse"))

		started := time.Now()
		for _, ak := range aks {
			Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		}
		for _, ak := range aks {
			Eventually(func() bool { return gone(ak) }, timeout, poll).Should(BeTrue(), ak.Name+": "+describe(mgr))
		}
		Eventually(func() bool { return gone(doomed) }, timeout, poll).Should(BeTrue(), "the issuer goes with its last AccessKey")
		Expect(healthy.liveKeys("chaos-doomed-")).To(BeEmpty(), "every key was revoked")
		AddReportEntry("deletion after the issuer", fmt.Sprintf("3 AccessKeys, their issuer and its credentials gone in %s, 0 keys left",
			time.Since(started).Round(100*time.Millisecond)))
	})

	// With a failover, the manager that revokes never saw the credentials:
	// it is started after the namespace's deletion took the Secret, and
	// reads them from the Secret its finalizer kept.
	DescribeTable("deletes a whole namespace (AccessKeys, KeyIssuer, credentials Secret at once) and revokes every key",
		func(failover bool) {
			namespace := newNamespace()
			Expect(k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "own-credentials", Namespace: namespace},
				StringData: map[string]string{"EXOSCALE_API_KEY": healthy.key, "EXOSCALE_API_SECRET": healthy.secret},
			})).To(Succeed())
			prefix := "chaos-ns-" + namespace
			Expect(k8sClient.Create(ctx, &iamv1beta1.KeyIssuer{
				ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: namespace},
				Spec: iamv1beta1.IssuerSpec{
					API: iamv1beta1.IssuerAPIIAMv3, Endpoint: healthy.endpoint(), KeyNamePrefix: prefix,
					CredentialsRef: iamv1beta1.CredentialsReference{Name: "own-credentials"},
					Allowed:        iamv1beta1.Allowed{Operations: []string{"*-sos-*"}, Resources: []string{"sos/bucket:*"}},
				},
			})).To(Succeed())
			for i := range 5 {
				ak := accessKeyOn(namespace, fmt.Sprintf("team-%d", i), "own", func(ak *iamv1beta1.AccessKey) {
					ak.Spec.IssuerRef.Kind = iamv1beta1.KeyIssuerKind
				})
				waitReady(ak, timeout)
			}
			Expect(healthy.liveKeys(prefix)).To(HaveLen(5))
			credentials := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "own-credentials", Namespace: namespace}}
			Eventually(func() []string {
				_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(credentials), credentials)
				return credentials.Finalizers
			}, timeout, poll).Should(ContainElement(iamv1beta1.CredentialsFinalizer), "the Secret is held while its keys live")

			if failover {
				By("killing the manager, deleting the namespace while none runs, and starting another")
				mgr.kill()
			}
			started := time.Now()
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
			Expect(k8sClient.Delete(ctx, ns)).To(Succeed())
			if failover {
				Eventually(func() bool {
					return k8sClient.Get(ctx, client.ObjectKeyFromObject(credentials), credentials) == nil && !credentials.DeletionTimestamp.IsZero()
				}, timeout, poll).Should(BeTrue(), "the namespace's deletion reached the Secret")
				startChaosManager("chaos-manager-after-teardown")
			}
			Eventually(func() bool { return gone(ns) }, timeout, poll).Should(BeTrue(), "the namespace is deleted: "+describe(mgr))
			Expect(healthy.liveKeys(prefix)).To(BeEmpty(), "every key was revoked")
			AddReportEntry("namespace deletion", fmt.Sprintf("5 AccessKeys, their KeyIssuer and credentials (failover: %t): namespace gone in %s, 0 keys left",
				failover, time.Since(started).Round(100*time.Millisecond)))
		},
		Entry("by the manager that minted them", false),
		Entry("by a manager started after the deletion began, which never held the credentials in memory", true),
	)

	It("releases an AccessKey whose keys cannot be revoked after --revoke-timeout, naming the keys left live", func() {
		namespace := newNamespace()
		lost := healthy.issuer("chaos-lost")
		ak := accessKeyOn(namespace, "stranded", lost.Name)
		waitReady(ak, timeout)
		keyID := string(secretOf(ak).Data["EXOSCALE_API_KEY"])

		// The credentials go while the manager is down, for good: an admin
		// strips the finalizer that would keep them and deletes them. Nothing
		// is left in memory or in the cluster to revoke with.
		mgr.kill()
		credentials := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chaos-lost-credentials", Namespace: releaseNamespace}}
		Expect(k8sClient.Patch(ctx, credentials, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
		Expect(k8sClient.Delete(ctx, credentials)).To(Succeed())
		Expect(k8sClient.Delete(ctx, lost)).To(Succeed())
		startChaosManager("chaos-manager-lost")
		started := time.Now()
		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() string { return syncedReason(ak) }, timeout, poll).Should(Equal("RevokeFailed"))
		Eventually(func() bool { return gone(ak) }, timeout, poll).Should(BeTrue(), describe(mgr))
		released := time.Since(started)
		Expect(released).To(BeNumerically(">=", 15*time.Second), "released only after the revoke timeout (20s)")

		events := &corev1.EventList{}
		Expect(k8sClient.List(ctx, events, client.InNamespace(namespace))).To(Succeed())
		var warned bool
		for _, e := range events.Items {
			warned = warned || (e.Reason == "KeysLeftLive" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, keyID))
		}
		Expect(warned).To(BeTrue(), "a KeysLeftLive Warning names the key")
		Expect(sum(managerMetrics(metricsAddr), "exokey_unrevoked_keys", keyID)).To(Equal(1.0))
		By("restarting the manager: the record of the key left live outlives it")
		mgr.kill()
		startChaosManager("chaos-manager-after-release")
		Eventually(func() float64 { return sum(managerMetrics(metricsAddr), "exokey_unrevoked_keys", keyID) }, timeout, poll).Should(Equal(1.0))
		record := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "exokey-keys-left-live"}, record)).To(Succeed())
		Expect(record.Data).To(ContainElement(ContainSubstring(keyID)))
		Expect(healthy.liveKeys("chaos-lost-")).To(HaveKey(keyID), "the key is indeed still live, for an admin to revoke")
		Eventually(func() bool { return gone(lost) }, timeout, poll).Should(BeTrue(), "and its issuer is free to go")
		// As an admin would, from the event.
		root, err := exoscale.New(exoscale.Config{API: exoscale.APIIAMv3, Endpoint: healthy.endpoint(), Key: healthy.key,
			Secret: exoscale.Secret(healthy.secret)})
		Expect(err).NotTo(HaveOccurred())
		Expect(root.Revoke(ctx, exoscale.Key{ID: keyID})).To(Succeed())
		delete(record.Data, configMapEntry(record.Data, keyID))
		Expect(k8sClient.Update(ctx, record)).To(Succeed())
		AddReportEntry("unrevokable key", fmt.Sprintf("released after %s with a KeysLeftLive Warning naming %s", released.Round(time.Second), keyID))
	})

	// 3. One bad issuer cannot starve the others.
	It("keeps a dead endpoint and a throttling one from delaying a healthy issuer's AccessKeys", func() {
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				conn, err := dead.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, conn) // accepted, never answered
				mu.Unlock()
			}
		}()
		hangUp := func() {
			_ = dead.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				_ = c.Close()
			}
		}
		DeferCleanup(hangUp)
		throttling := newCloud("chaos-429", "--throttle-rate=1", "--retry-after=120")
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-dead-credentials", Namespace: releaseNamespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": "EXOdead", "EXOSCALE_API_SECRET": "dead"},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, &iamv1beta1.ClusterKeyIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: "chaos-dead"},
			Spec: iamv1beta1.ClusterKeyIssuerSpec{IssuerSpec: iamv1beta1.IssuerSpec{
				API: iamv1beta1.IssuerAPIIAMv3, Endpoint: "http://" + dead.Addr().String() + "/v2", KeyNamePrefix: "chaos-dead",
				CredentialsRef: iamv1beta1.CredentialsReference{Name: "chaos-dead-credentials", Namespace: releaseNamespace},
				Allowed:        iamv1beta1.Allowed{Operations: []string{"*-sos-*"}, Resources: []string{"sos/bucket:*"}},
			}},
		})).To(Succeed())
		throttling.issuer("chaos-throttled")

		bad := newNamespace()
		var stuck []*iamv1beta1.AccessKey
		for i := range 20 {
			stuck = append(stuck, accessKeyOn(bad, fmt.Sprintf("dead-%02d", i), "chaos-dead"),
				accessKeyOn(bad, fmt.Sprintf("throttled-%02d", i), "chaos-throttled"))
		}
		time.Sleep(2 * time.Second) // the bad issuers' AccessKeys have the workers first

		good := newNamespace()
		started := time.Now()
		var healthyKeys []*iamv1beta1.AccessKey
		for i := range 20 {
			healthyKeys = append(healthyKeys, accessKeyOn(good, fmt.Sprintf("healthy-%02d", i), "chaos"))
		}
		for _, ak := range healthyKeys {
			waitReady(ak, timeout)
		}
		took := time.Since(started)
		stillWaiting := 0
		for _, ak := range stuck {
			if !ready(ak) {
				stillWaiting++
			}
		}
		AddReportEntry("starvation", fmt.Sprintf("20 AccessKeys of a healthy issuer Ready in %s, while %d of 40 on a dead and a throttling issuer wait",
			took.Round(100*time.Millisecond), stillWaiting))
		Expect(stillWaiting).To(Equal(40), "the bad issuers do wait")
		Expect(took).To(BeNumerically("<", 15*time.Second), "the healthy issuer's AccessKeys are not held up")

		By("the bad issuers' endpoints go for good, and their AccessKeys are deleted")
		hangUp()
		throttling.stop()
		started = time.Now()
		for _, ak := range stuck {
			Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		}
		for _, ak := range stuck {
			Eventually(func() bool { return gone(ak) }, 2*timeout, poll).Should(BeTrue(), ak.Name+": "+describe(mgr))
		}
		for _, name := range []string{"chaos-dead", "chaos-throttled"} {
			iss := &iamv1beta1.ClusterKeyIssuer{ObjectMeta: metav1.ObjectMeta{Name: name}}
			Expect(k8sClient.Delete(ctx, iss)).To(Succeed())
			Eventually(func() bool { return gone(iss) }, timeout, poll).Should(BeTrue(), name)
		}
		AddReportEntry("deletion on dead endpoints", fmt.Sprintf("40 AccessKeys and their 2 issuers gone in %s",
			time.Since(started).Round(100*time.Millisecond)))
	})

	// 4. Crashes and outages converge with nothing leaked.
	It("converges with nothing leaked through repeated kills of the manager and an emulator outage", func() {
		var namespaces []string
		for range 4 {
			namespaces = append(namespaces, newNamespace())
		}
		createsBefore := healthy.total("create-api-key")
		callsBefore := healthy.total("")
		started := time.Now()
		var aks []*iamv1beta1.AccessKey
		for i := range size.keys {
			aks = append(aks, accessKeyOn(namespaces[i%4], fmt.Sprintf("burst-%04d", i), "chaos"))
		}

		kills, outage := 0, time.Duration(0)
		for kills < size.kills {
			time.Sleep(time.Duration(1000+rand.IntN(3000)) * time.Millisecond)
			mgr.kill()
			kills++
			if kills == size.kills/2 {
				// The cloud goes away for 15 s, with the manager running.
				startChaosManager(fmt.Sprintf("chaos-manager-kill-%02d", kills))
				healthy.stop()
				down := time.Now()
				time.Sleep(15 * time.Second)
				healthy.start()
				outage = time.Since(down)
				continue
			}
			startChaosManager(fmt.Sprintf("chaos-manager-kill-%02d", kills))
		}
		readyCount := func() int {
			list := &iamv1beta1.AccessKeyList{}
			n := 0
			for _, ns := range namespaces {
				Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
				for _, ak := range list.Items {
					if meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready") && ak.Status.Pending.IsZero() {
						n++
					}
				}
			}
			return n
		}
		Eventually(readyCount, 5*time.Minute, time.Second).Should(Equal(size.keys), describe(mgr))
		converged := time.Since(started)

		published := map[string]bool{}
		broken := 0
		for _, ak := range aks {
			s := secretOf(ak)
			published[string(s.Data["EXOSCALE_API_KEY"])] = true
			if !healthy.works(s) {
				broken++
			}
		}
		Expect(broken).To(BeZero(), "every Secret's credential works")
		Expect(published).To(HaveLen(size.keys))
		var live map[string]bool
		Eventually(func() map[string]bool {
			live = map[string]bool{}
			for k := range healthy.liveKeys("chaos-") {
				live[k] = true
			}
			return live
		}, time.Minute, time.Second).Should(Satisfy(func(live map[string]bool) bool {
			for k := range published {
				if !live[k] {
					return false
				}
			}
			return true
		}))
		// Other specs' AccessKeys of this issuer that are still alive.
		others := map[string]bool{}
		list := &iamv1beta1.AccessKeyList{}
		Expect(k8sClient.List(ctx, list)).To(Succeed())
		for _, ak := range list.Items {
			if ak.Status.KeyID != "" && !published[ak.Status.KeyID] {
				others[ak.Status.KeyID] = true
			}
		}
		var leaked []string
		for k := range live {
			if !published[k] && !others[k] {
				leaked = append(leaked, k)
			}
		}
		sort.Strings(leaked)
		creates := healthy.total("create-api-key") - createsBefore
		calls := healthy.total("") - callsBefore
		AddReportEntry("chaos", fmt.Sprintf("%d AccessKeys, %d kills survived, an emulator outage of %s: converged in %s; "+
			"%d keys created, %d leaked, %.2f API calls per key", size.keys, kills, outage.Round(time.Second),
			converged.Round(time.Second), creates, len(leaked), float64(calls)/float64(size.keys)))
		Expect(leaked).To(BeEmpty(), "live keys at the emulator are exactly the live AccessKeys' keys")
		Expect(float64(calls)/float64(size.keys)).To(BeNumerically("<", 10), "no retry storm")

		By("a restart of a healthy manager costs no writes and no creates in its first drift period")
		mgr.kill()
		createsBefore = healthy.total("create-api-key") + healthy.total("create-iam-role")
		lookupsBefore := healthy.total("get-api-key")
		startChaosManager("chaos-manager-restarted", "--drift-check-period=30s")
		caughtUp := time.Now()
		Eventually(func() float64 {
			return sum(managerMetrics(metricsAddr), "controller_runtime_reconcile_total", `controller="accesskey"`)
		}, timeout, poll).Should(BeNumerically(">=", size.keys))
		AddReportEntry("restart", fmt.Sprintf("a restart with %d Ready AccessKeys reconciled each once in %s", size.keys,
			time.Since(caughtUp).Round(100*time.Millisecond)))
		time.Sleep(30 * time.Second)
		values := managerMetrics(metricsAddr)
		restartCreates := healthy.total("create-api-key") + healthy.total("create-iam-role") - createsBefore
		lookups := healthy.total("get-api-key") - lookupsBefore
		AddReportEntry("first drift period after a restart", fmt.Sprintf("%.0f writes to the API server, %d creates, %d lookups for %d keys",
			writes(values), restartCreates, lookups, size.keys))
		Expect(restartCreates).To(BeZero())
		Expect(writes(values)).To(BeZero())
		Expect(float64(lookups)).To(BeNumerically("<=", 1.2*float64(size.keys)))

		for _, ns := range namespaces {
			Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		}
	})

	// 6. Memory stays bounded under churn.
	It("returns to its starting heap after AccessKeys are created and deleted", func() {
		// Memory is measured here, not speed: a higher request rate than the
		// default 10 a second keeps the churn short.
		mgr.kill()
		startChaosManager("chaos-manager-churn", "--exoscale-qps=200", "--exoscale-burst=200", "--max-concurrent-reconciles=8")
		within := max(10*time.Minute, time.Duration(size.churn)*300*time.Millisecond)
		heap := func() float64 { return liveHeap(pprofAddr) }
		before := heap()
		namespace := newNamespace()
		var aks []*iamv1beta1.AccessKey
		for i := range size.churn {
			aks = append(aks, accessKeyOn(namespace, fmt.Sprintf("churn-%05d", i), "chaos"))
		}
		Eventually(func() int {
			list := &iamv1beta1.AccessKeyList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(namespace))).To(Succeed())
			n := 0
			for _, ak := range list.Items {
				if meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready") {
					n++
				}
			}
			return n
		}, within, time.Second).Should(Equal(size.churn))
		peak := heap()
		for _, ak := range aks {
			Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		}
		Eventually(func() int {
			list := &iamv1beta1.AccessKeyList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(namespace))).To(Succeed())
			return len(list.Items)
		}, within, time.Second).Should(BeZero())
		Eventually(func() int { return len(healthy.liveKeys("chaos-" + namespace)) }, timeout, poll).Should(BeZero())
		var after float64
		Eventually(func() float64 { after = heap(); return after }, 3*time.Minute, time.Second).
			Should(BeNumerically("<", before+0.25*(peak-before)+4<<20))
		AddReportEntry("what holds the heap after churn", heapTop(pprofAddr))
		AddReportEntry("churn", fmt.Sprintf("%d AccessKeys created and deleted: heap %.1f MiB before, %.1f MiB with them, %.1f MiB after",
			size.churn, before/(1<<20), peak/(1<<20), after/(1<<20)))
	})
})

// configMapEntry is the key of the record's entry that names keyID.
func configMapEntry(data map[string]string, keyID string) string {
	for k, v := range data {
		if strings.Contains(v, keyID) {
			return k
		}
	}
	return ""
}
