package controller

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/test/argocd"
)

// kstatus itself (the library Helm 4's --wait and Flux's health checks
// use) judges what the real controller wrote, at each step.

var _ = Describe("kstatus", func() {
	var namespace string
	BeforeEach(func() { namespace = newNamespace(nil) })

	It("reads an AccessKey InProgress while its key is minted, and Current only once its Secret works", func() {
		emu.SetFaults(emulator.Faults{LatencyMS: 150}) // a create long enough to be seen
		DeferCleanup(func() { emu.SetFaults(emulator.Faults{}) })
		seen := watchKstatus(namespace)
		ak := newAccessKey(namespace, "minted", iamv1beta1.IssuerAPIIAMv3)

		var first *observation
		Eventually(func() *observation { first = seen.firstCurrent(); return first }, timeout, poll).ShouldNot(BeNil())
		Expect(first.secretFound).To(BeTrue(), "Current before the Secret existed")
		Expect(seen.reasons(status.InProgressStatus)).To(ContainElement(ReasonMinting), "the pending record reads as Reconciling")
		Expect(seen.before(first)).NotTo(ContainElement(status.CurrentStatus))
		Expect(allowed(secretOf(ak), "get-sos-object", "backups")).To(BeTrue())
		Expect(argoHealth(fetch(ak)).Status).To(Equal("Healthy"))
	})

	It("reads a refusal only an edit fixes as Failed, with its reason, and an edit heals it", func() {
		ak := newAccessKey(namespace, "typo", iamv1beta1.IssuerAPIIAMv3, func(ak *iamv1beta1.AccessKey) {
			ak.Spec.Operations = []string{"get-sos-objekt"}
		})
		var result *status.Result
		Eventually(func() status.Status { result = kstatusOf(fetch(ak)); return result.Status }, timeout, poll).Should(Equal(status.FailedStatus))
		Expect(result.Message).To(ContainSubstring(`did you mean "get-sos-object"`))
		Expect(condition(fetch(ak), ConditionStalled).Reason).To(Equal(ReasonUnknownOperation))
		Expect(argoHealth(fetch(ak))).To(Equal(argocd.Health{Status: "Degraded", Message: ReasonUnknownOperation + ": " + result.Message}))

		edit(ak, func(ak *iamv1beta1.AccessKey) { ak.Spec.Operations = []string{"get-sos-object"} })
		Eventually(func() status.Status { return kstatusOf(fetch(ak)).Status }, timeout, poll).Should(Equal(status.CurrentStatus))
		Expect(condition(fetch(ak), ConditionStalled)).To(BeNil())
	})

	It("reads an AccessKey waiting for its issuer as InProgress, not Failed, until the issuer arrives", func() {
		iss := clusterIssuer("bootstrap-"+namespace, iamv1beta1.IssuerAPIAccessKeyV2, nil)
		ak := newAccessKey(namespace, "early", iamv1beta1.IssuerAPIAccessKeyV2, func(ak *iamv1beta1.AccessKey) { ak.Spec.IssuerRef.Name = iss.Name })
		waitRefused(ak, ReasonIssuerNotFound)
		Consistently(func() status.Status { return kstatusOf(fetch(ak)).Status }, time.Second, poll).Should(Equal(status.InProgressStatus))
		Expect(condition(fetch(ak), ConditionReconciling).Reason).To(Equal(ReasonIssuerNotFound))
		Expect(argoHealth(fetch(ak)).Status).To(Equal("Progressing"))

		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		Eventually(func() status.Status { return kstatusOf(fetch(ak)).Status }, timeout, poll).Should(Equal(status.CurrentStatus))
	})

	It("reads an AccessKey being deleted as Terminating", func() {
		seen := watchKstatus(namespace)
		ak := waitReady(newAccessKey(namespace, "deleted", iamv1beta1.IssuerAPIIAMv3))
		Expect(kstatusOf(ak).Status).To(Equal(status.CurrentStatus))
		Expect(k8sClient.Delete(ctx, ak)).To(Succeed())
		Eventually(func() []status.Status { return seen.statuses() }, timeout, poll).Should(ContainElement(status.TerminatingStatus))
	})

	It("reads issuers InProgress while their credentials are missing, Failed on an endpoint refused, Current when Ready", func() {
		iss := clusterIssuer("creds-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
		iss.Spec.CredentialsRef = iamv1beta1.CredentialsReference{Name: "later-" + namespace, Namespace: systemNamespace}
		Expect(k8sClient.Create(ctx, iss)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), iss)).To(Succeed())
			g.Expect(iss.Status.ObservedGeneration).To(HaveValue(Equal(iss.Generation)))
			g.Expect(kstatusOf(iss).Status).To(Equal(status.InProgressStatus))
			g.Expect(argoHealth(iss).Status).To(Equal("Progressing"))
		}, timeout, poll).Should(Succeed())
		rootKey, rootSecret := emu.Root()
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "later-" + namespace, Namespace: systemNamespace},
			StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret},
		})).To(Succeed())
		Eventually(func() status.Status {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(iss), iss)).To(Succeed())
			return kstatusOf(iss).Status
		}, timeout, poll).Should(Equal(status.CurrentStatus))
		Expect(argoHealth(iss).Status).To(Equal("Healthy"))

		insecure := clusterIssuer("insecure-"+namespace, iamv1beta1.IssuerAPIIAMv3, nil)
		insecure.Spec.Endpoint = "http://exoscale.example.com/v2"
		Expect(k8sClient.Create(ctx, insecure)).To(Succeed())
		Eventually(func() status.Status {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(insecure), insecure)).To(Succeed())
			return kstatusOf(insecure).Status
		}, timeout, poll).Should(Equal(status.FailedStatus))
		Expect(argoHealth(insecure).Status).To(Equal("Degraded"))
	})
})

// unstructuredOf is obj as the tools read it: unstructured, with its kind.
func unstructuredOf(obj client.Object) *unstructured.Unstructured {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: raw}
	gvk, err := apiutil.GVKForObject(obj, scheme)
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	u.SetGroupVersionKind(gvk)
	return u
}

// kstatusOf is what kstatus makes of an object.
func kstatusOf(obj client.Object) *status.Result {
	result, err := status.Compute(unstructuredOf(obj))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return result
}

// argoHealth is what exokey's Argo CD health check makes of an object.
func argoHealth(obj client.Object) argocd.Health {
	u := unstructuredOf(obj)
	// As Argo CD reads it: JSON, whose numbers are floats.
	encoded, err := json.Marshal(u.Object)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var decoded map[string]any
	ExpectWithOffset(1, json.Unmarshal(encoded, &decoded)).To(Succeed())
	gvk := u.GroupVersionKind()
	health, err := argocd.Evaluate(argocd.ScriptPath(filepath.Join("..", ".."), gvk.Group, gvk.Kind), decoded)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return health
}

// observation is one version of an AccessKey a watch saw, as kstatus read
// it, and whether its Secret existed when it was seen.
type observation struct {
	result      *status.Result
	reason      string
	secretFound bool
}

type kstatusWatch struct {
	mu   sync.Mutex
	seen []*observation
}

// watchKstatus records every version of the namespace's AccessKeys.
func watchKstatus(namespace string) *kstatusWatch {
	watcher, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	w, err := watcher.Watch(ctx, &iamv1beta1.AccessKeyList{}, client.InNamespace(namespace))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	DeferCleanup(w.Stop)
	kw := &kstatusWatch{}
	go func() {
		defer GinkgoRecover()
		for ev := range w.ResultChan() {
			ak, ok := ev.Object.(*iamv1beta1.AccessKey)
			if !ok {
				continue
			}
			o := &observation{result: kstatusOf(ak)}
			if c := condition(ak, ConditionReconciling); c != nil {
				o.reason = c.Reason
			}
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ak.Namespace, Name: secretName(ak)}, &corev1.Secret{})
			o.secretFound = err == nil
			kw.mu.Lock()
			kw.seen = append(kw.seen, o)
			kw.mu.Unlock()
		}
	}()
	return kw
}

func (kw *kstatusWatch) firstCurrent() *observation {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	for _, o := range kw.seen {
		if o.result.Status == status.CurrentStatus {
			return o
		}
	}
	return nil
}

// before lists the statuses seen before o.
func (kw *kstatusWatch) before(o *observation) []status.Status {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	var out []status.Status
	for _, seen := range kw.seen {
		if seen == o {
			break
		}
		out = append(out, seen.result.Status)
	}
	return out
}

func (kw *kstatusWatch) statuses() []status.Status {
	return kw.before(nil)
}

// reasons lists the Reconciling reasons of the versions seen with status s.
func (kw *kstatusWatch) reasons(s status.Status) []string {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	var out []string
	for _, o := range kw.seen {
		if o.result.Status == s {
			out = append(out, o.reason)
		}
	}
	return out
}
