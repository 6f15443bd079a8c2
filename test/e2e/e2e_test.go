//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	v3 "github.com/exoscale/egoscale/v3"
	"github.com/exoscale/egoscale/v3/credentials"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/emulator"
)

const (
	timeout = time.Minute
	poll    = 200 * time.Millisecond
)

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func newAccessKey(namespace, name string) *iamv1beta1.AccessKey {
	ak := &iamv1beta1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: iamv1beta1.AccessKeySpec{
			IssuerRef:  iamv1beta1.IssuerReference{Name: "exoscale"},
			Operations: []string{"get-sos-object"},
			Resources:  []string{"sos/bucket:e2e"},
		},
	}
	Expect(k8sClient.Create(ctx, ak)).To(Succeed())
	return ak
}

func ready(ak *iamv1beta1.AccessKey) bool {
	got := &iamv1beta1.AccessKey{}
	if k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), got) != nil {
		return false
	}
	return meta.IsStatusConditionTrue(got.Status.Conditions, "Ready") && !createInFlight(got)
}

// createInFlight reports a key create recorded and not yet finished.
func createInFlight(ak *iamv1beta1.AccessKey) bool {
	return !ak.Status.Pending.IsZero()
}

func secretOf(ak *iamv1beta1.AccessKey) *corev1.Secret {
	s := &corev1.Secret{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ak.Namespace, Name: ak.Name}, s)).To(Succeed())
	return s
}

func works(s *corev1.Secret) (bool, error) {
	return emulator.Authorize(ctx, endpoint, string(s.Data["EXOSCALE_API_KEY"]), string(s.Data["EXOSCALE_API_SECRET"]),
		"get-sos-object", map[string]string{"bucket": "e2e"})
}

// liveKeys lists the emulator's API keys minted by exokey in namespace.
func liveKeys(namespace string) map[string]bool {
	c, err := v3.NewClient(credentials.NewStaticCredentials(rootKey, rootSecret),
		v3.ClientOptWithEndpoint(v3.Endpoint(endpoint)), v3.ClientOptWithHTTPClient(http.DefaultClient))
	Expect(err).NotTo(HaveOccurred())
	keys, err := c.ListAPIKeys(ctx)
	Expect(err).NotTo(HaveOccurred())
	live := map[string]bool{}
	for _, k := range keys.APIKeys {
		if strings.HasPrefix(k.Name, "e2e-"+namespace+"-") {
			live[k.Key] = true
		}
	}
	return live
}

// rolesNamed lists the emulator's IAM roles whose name starts with prefix.
func rolesNamed(prefix string) []string {
	c, err := v3.NewClient(credentials.NewStaticCredentials(rootKey, rootSecret),
		v3.ClientOptWithEndpoint(v3.Endpoint(endpoint)), v3.ClientOptWithHTTPClient(http.DefaultClient))
	Expect(err).NotTo(HaveOccurred())
	roles, err := c.ListIAMRoles(ctx)
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, r := range roles.IAMRoles {
		if strings.HasPrefix(r.Name, prefix) {
			names = append(names, r.Name)
		}
	}
	return names
}

var _ = Describe("exokey on real binaries", Ordered, func() {
	var first *manager
	BeforeAll(func() { first = startManager("manager-1") })
	AfterAll(func() {
		if first != nil {
			first.kill()
		}
	})

	It("makes an AccessKey Ready with a working credential", func() {
		namespace := newNamespace()
		ak := newAccessKey(namespace, "app")
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(first))
		ok, err := works(secretOf(ak))
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
	})

	It("revokes the key on delete, and the garbage collector removes the Secret", func() {
		namespace := newNamespace()
		ak := newAccessKey(namespace, "gone")
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(first))
		s := secretOf(ak)
		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() error { _, err := works(s); return err }, timeout, poll).Should(HaveOccurred(), "the key is revoked")
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(s), &corev1.Secret{})
		}, timeout, poll).Should(Satisfy(func(err error) bool { return err != nil && strings.Contains(err.Error(), "not found") }))
	})

	It("hands out session credentials that are renewed before they expire, and deletes their role with the AccessKey", func() {
		namespace := newNamespace()
		ak := &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: "session", Namespace: namespace},
			Spec: iamv1beta1.AccessKeySpec{
				IssuerRef:  iamv1beta1.IssuerReference{Name: "exoscale"},
				Operations: []string{"get-sos-object"},
				Resources:  []string{"sos/bucket:e2e"},
				TTLSeconds: iamv1beta1.SecondsOf(6 * time.Second),
			},
		}
		Expect(k8sClient.Create(ctx, ak)).To(Succeed())
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(first))
		first := secretOf(ak)
		Expect(works(first)).To(BeTrue())
		Eventually(func() string { return string(secretOf(ak).Data["EXOSCALE_API_KEY"]) }, 20*time.Second, poll).
			ShouldNot(Equal(string(first.Data["EXOSCALE_API_KEY"])), "renewed before the 6 s ttl ran out")
		Eventually(func() (bool, error) { return works(secretOf(ak)) }, 10*time.Second, poll).Should(BeTrue())
		Eventually(func() error { _, err := works(first); return err }, 15*time.Second, poll).Should(HaveOccurred(), "the old credential expires")
		Expect(rolesNamed("e2e-"+namespace+"-session-")).To(HaveLen(1), "one role, however many renewals")

		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() []string { return rolesNamed("e2e-" + namespace + "-session-") }, timeout, poll).Should(BeEmpty())
	})

	It("keeps one namespace's storm of AccessKeys from delaying another namespace's first key", func() {
		// With the default flags (10 requests a second to Exoscale, per
		// issuer; a 10m drift-check period) 100 IAMv3 keys take about 20 s
		// to mint.
		first.kill()
		first = startManager("manager-1-defaults", "--drift-check-period=10m")
		storm := newNamespace()
		var aks []*iamv1beta1.AccessKey
		for i := range 100 {
			aks = append(aks, newAccessKey(storm, fmt.Sprintf("storm-%03d", i)))
		}
		readyCount := func() int {
			n := 0
			for _, ak := range aks {
				if ready(ak) {
					n++
				}
			}
			return n
		}
		Eventually(readyCount, timeout, poll).Should(BeNumerically(">=", 1))
		started := time.Now()
		victim := newAccessKey(newNamespace(), "first-key")
		Eventually(func() bool { return ready(victim) }, timeout, 50*time.Millisecond).Should(BeTrue(), describe(first))
		waited, stormReady := time.Since(started), readyCount()
		AddReportEntry("fairness", fmt.Sprintf("the quiet namespace's first key was Ready after %s, with %d of the storm's 100 Ready",
			waited.Round(10*time.Millisecond), stormReady))
		Expect(stormReady).To(BeNumerically("<", 60), "the quiet namespace did not wait for the storm: %s", linesAbout(first, victim.Namespace))
		Eventually(readyCount, 2*timeout, poll).Should(Equal(len(aks)), "and the storm converges")
		first.kill()
		first = startManager("manager-1-again")
	})

	It("leaks no key when the manager is killed in the middle of a burst", func() {
		namespace := newNamespace()
		var aks []*iamv1beta1.AccessKey
		for i := range 30 {
			aks = append(aks, newAccessKey(namespace, fmt.Sprintf("burst-%02d", i)))
		}
		// Kill it once some, but not all, keys are out.
		Eventually(func() int { return len(liveKeys(namespace)) }, timeout, 20*time.Millisecond).Should(BeNumerically(">=", 3))
		first.kill()
		first = startManager("manager-1-restarted")

		// A create the kill interrupted before it reached the emulator
		// leaves a record whose key never appears: it is kept, and nothing
		// else minted, until DefaultPendingSettle after the create started.
		for _, ak := range aks {
			Eventually(func() bool { return ready(ak) }, controller.DefaultPendingSettle+timeout, poll).Should(BeTrue(), ak.Name+": "+describe(first))
		}
		published := map[string]bool{}
		for _, ak := range aks {
			s := secretOf(ak)
			published[string(s.Data["EXOSCALE_API_KEY"])] = true
			ok, err := works(s)
			Expect(err).NotTo(HaveOccurred())
			Expect(ok).To(BeTrue(), ak.Name)
		}
		Expect(published).To(HaveLen(len(aks)))
		Eventually(func() map[string]bool { return liveKeys(namespace) }, timeout, poll).Should(Equal(published),
			"every live key is held by exactly one Secret")
	})

	It("hands over to a second replica waiting on the lease", func() {
		second := startManager("manager-2")
		defer second.kill()
		leaseHolder := func() string {
			lease := &coordinationv1.Lease{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "exokey.iam.exokey.io"}, lease); err != nil {
				return ""
			}
			if lease.Spec.HolderIdentity == nil {
				return ""
			}
			return *lease.Spec.HolderIdentity
		}
		holder := leaseHolder()
		Expect(holder).NotTo(BeEmpty())
		Consistently(leaseHolder, 3*time.Second, poll).Should(Equal(holder), "the second replica waits")

		first.kill()
		first = nil
		Eventually(leaseHolder, 2*timeout, poll).ShouldNot(Equal(holder), "the second replica takes the lease")
		ak := newAccessKey(newNamespace(), "after-failover")
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(second))
		Expect(second.forbidden()).To(BeEmpty())
	})

	It("needed nothing its RBAC does not grant", func() {
		for _, log := range []string{"manager-1.log", "manager-1-defaults.log", "manager-1-again.log", "manager-1-restarted.log", "manager-2.log"} {
			m := &manager{log: workDir + "/" + log}
			Expect(m.forbidden()).To(BeEmpty(), log)
		}
	})
})

// linesAbout returns the lines of a manager's log that mention s.
func linesAbout(m *manager, s string) string {
	var lines []string
	for _, line := range strings.Split(m.logText(), "\n") {
		if strings.Contains(line, s) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}
