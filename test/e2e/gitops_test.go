//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// The tools that deploy AccessKeys and wait for them, run as their users
// run them: Helm 4's install --wait (kstatus, its default watcher) and
// kubectl wait, built from the Go module proxy at pinned versions.
var _ = Describe("Tools that wait", Ordered, func() {
	var m *manager
	BeforeAll(func() {
		m = startManager("manager-gitops")
		// The lease of an earlier manager may still be held: wait until
		// this one serves, so what is timed below is exokey's doing.
		warm := newAccessKey(newNamespace(), "warm-up")
		Eventually(func() bool { return ready(warm) }, 2*timeout, poll).Should(BeTrue(), describe(m))
	})
	AfterAll(func() {
		setEmulatorFaults(`{}`)
		if m != nil {
			m.kill()
		}
	})

	It("helm install --wait returns only once the chart's AccessKey has a working Secret", func() {
		namespace := newNamespace()
		// Every Exoscale call takes 1.5 s: minting takes several seconds.
		setEmulatorFaults(`{"latencyMs": 1500}`)
		started := time.Now()
		out, err := helm4("install", "slow", filepath.Join(root, "test", "e2e", "testdata", "app"), "--namespace", namespace,
			"--wait", "--timeout", "2m")
		took := time.Since(started)
		Expect(err).NotTo(HaveOccurred(), out)
		ak := &iamv1beta1.AccessKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "slow"}, ak)).To(Succeed())
		s := secretOf(ak) // fails if Helm returned before the Secret was written
		setEmulatorFaults(`{}`)
		ok, err := works(s)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue(), "the Secret Helm waited for holds a working key")
		Expect(took).To(BeNumerically(">", 2500*time.Millisecond), "Helm waited for the mint: two calls of 1.5 s")
		AddReportEntry("helm install --wait", fmt.Sprintf("returned after %s with a working Secret", took.Round(100*time.Millisecond)))
	})

	It("helm install --wait fails within seconds, naming the reason, for an AccessKey beyond its ceiling", func() {
		namespace := newNamespace()
		started := time.Now()
		out, err := helm4("install", "beyond", filepath.Join(root, "test", "e2e", "testdata", "app"), "--namespace", namespace,
			"--set", "operations={get-sos-object,list-zones}", "--wait", "--timeout", "2m")
		took := time.Since(started)
		Expect(err).To(HaveOccurred(), "Helm accepted an AccessKey exokey refuses: %s", out)
		Expect(out).To(ContainSubstring(`does not allow this: operation list-zones`))
		Expect(took).To(BeNumerically("<", 30*time.Second), "Helm failed fast, not at its 2-minute timeout")
		AddReportEntry("helm install --wait, beyond the ceiling", fmt.Sprintf("failed after %s: %s", took.Round(100*time.Millisecond), lastLine(out)))
	})

	It("kubectl wait --for=condition=Ready after a spec change returns only once the new key is published", func() {
		namespace := newNamespace()
		ak := newAccessKey(namespace, "edited")
		Eventually(func() bool { return ready(ak) }, timeout, poll).Should(BeTrue(), describe(m))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), ak)).To(Succeed())
		first := ak.Status.KeyID

		setEmulatorFaults(`{"latencyMs": 1000}`)
		ak.Spec.Operations = append(ak.Spec.Operations, "list-sos-bucket")
		Expect(k8sClient.Update(ctx, ak)).To(Succeed())
		out, err := kubectl("wait", "--for=condition=Ready", "accesskey/edited", "--namespace", namespace, "--timeout=90s")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ak), ak)).To(Succeed())
		Expect(ak.Status.KeyID).NotTo(Equal(first), "kubectl wait returned on the last generation's Ready")
		Expect(secretOf(ak).Annotations[iamv1beta1.KeyIDAnnotation]).To(Equal(ak.Status.KeyID))
		setEmulatorFaults(`{}`)
	})
})

// helm4 runs Helm 4 as a cluster admin; it answers the combined output.
func helm4(args ...string) (string, error) {
	return runTool(filepath.Join(root, "bin", "helm4"), append(args, "--kubeconfig", adminKubeconfig)...)
}

// kubectl runs the kubectl built with the control plane, as a cluster admin.
func kubectl(args ...string) (string, error) {
	return runTool(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append(args, "--kubeconfig", adminKubeconfig)...)
}

func runTool(binary string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// setEmulatorFaults sets the emulator's faults at run time.
func setEmulatorFaults(faults string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(endpoint, "/v2")+"/_emulator/faults", strings.NewReader(faults))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	resp.Body.Close()
	ExpectWithOffset(1, resp.StatusCode).To(Equal(http.StatusOK))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
