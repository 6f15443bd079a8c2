package controller

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/crds"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
)

// The suite runs the controllers in a manager against a real kube-apiserver
// and etcd, and an in-process emulator reached over HTTP through the SDKs.

const (
	systemNamespace = "exokey-system"
	rootSecretName  = "exoscale-root"
	// driftCheckPeriod is short so keys revoked behind exokey's back are
	// noticed within a test; it is the resync period too, so what the test
	// clock brings forward is seen within it.
	driftCheckPeriod = 2 * time.Second
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	emu       *emulator.Server
	endpoint  string
	// sosEndpoint is the emulator's S3 endpoint.
	sosEndpoint string
	ctx         context.Context
	cancel      context.CancelFunc
	// testClock is the reconciler's clock: real time plus an offset a test
	// can move forward, so rotation and grace periods pass without sleeping.
	testClock = &offsetClock{}
	// testRegistry holds the reconciler's metrics.
	testRegistry = prometheus.NewRegistry()
	// rootKeys are the root credential's backends by API, for acting behind exokey's back.
	rootKeys = map[iamv1beta1.IssuerAPI]exoscale.Keys{}
	// managerCache reads through the manager's cache, to see what it holds.
	managerCache client.Reader
	// clusterID labels the roles the manager mints.
	clusterID string
	// testIssuers are the manager's issuer backends and mint shares.
	testIssuers *IssuerClients
	// testInventory is the manager's inventory.
	testInventory *Inventory
	// testKeyNames names the manager's keys.
	testKeyNames *KeyNames
	// testCRDs is the controllers' check of the installed CRDs.
	testCRDs *CRDGate
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller suite")
}

var _ = BeforeSuite(func() {
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(), "run the tests with `make test`")
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(iamv1beta1.AddToScheme(scheme)).To(Succeed())
	Expect(apiextensionsv1.AddToScheme(scheme)).To(Succeed())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	emu, err = emulator.New(emulator.Options{})
	Expect(err).NotTo(HaveOccurred())
	server := httptest.NewServer(emu)
	DeferCleanup(server.Close)
	endpoint = server.URL + "/v2"
	sos := httptest.NewServer(emu.SOSHandler())
	DeferCleanup(sos.Close)
	sosEndpoint = sos.URL
	rootKey, rootSecret := emu.Root()
	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		config := fastConfig()
		config.API, config.Endpoint, config.Key, config.Secret = string(api), endpoint, rootKey, exoscale.Secret(rootSecret)
		rootKeys[api], err = exoscale.New(config)
		Expect(err).NotTo(HaveOccurred())
	}

	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: rootSecretName, Namespace: systemNamespace},
		StringData: map[string]string{"EXOSCALE_API_KEY": rootKey, "EXOSCALE_API_SECRET": rootSecret},
	})).To(Succeed())
	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		Expect(k8sClient.Create(ctx, clusterIssuer(issuerName(api), api, nil))).To(Succeed())
	}

	startManager()
})

var _ = AfterSuite(func() {
	cancel()
	Eventually(managerDone, time.Minute).Should(BeClosed())
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func startManager() {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:           scheme,
		Metrics:          metricsserver.Options{BindAddress: "0"},
		EventBroadcaster: NewEventBroadcaster(), //nolint:staticcheck // as the manager's
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: SecretCache(), InjectedPod(): PodCache(),
		}},
	})
	Expect(err).NotTo(HaveOccurred())
	managerCache = mgr.GetCache()
	recorder := NewEventRecorder(mgr)
	issuers := &IssuerClients{Reader: mgr.GetAPIReader(), Base: fastConfig()}
	testIssuers = issuers
	faultyClient := interceptor.NewClient(watchless{mgr.GetClient()}, faults.funcs())
	opts := controller.Options{MaxConcurrentReconciles: 4, SkipNameValidation: ptrTo(true),
		// Failures are injected on purpose: keep the backoff short.
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, time.Second)}
	clusterID, err = ClusterID(ctx, mgr.GetAPIReader())
	Expect(err).NotTo(HaveOccurred())
	metrics := NewMetrics(testRegistry, mgr.GetCache())
	testInventory = &Inventory{UnlistedLookupPeriod: driftCheckPeriod}
	keyNames, err := LoadKeyNames(ctx, k8sClient, systemNamespace, "exokey-key-names")
	Expect(err).NotTo(HaveOccurred())
	testKeyNames = keyNames
	builtin, err := crds.Builtin()
	Expect(err).NotTo(HaveOccurred())
	testCRDs = &CRDGate{Reader: mgr.GetAPIReader(), Builtin: builtin, Period: 200 * time.Millisecond}
	Expect(testCRDs.Check(ctx)).To(Succeed())
	Expect(testCRDs.Refusal()).To(BeEmpty(), "the suite's CRDs are this tree's")
	Expect(mgr.Add(testCRDs)).To(Succeed())
	Expect((&AccessKeyReconciler{
		Client: faultyClient, APIReader: failingReads{mgr.GetAPIReader()}, Recorder: recorder,
		Issuers: issuers, DriftCheckPeriod: driftCheckPeriod, Clock: testClock, Metrics: metrics, ClusterID: clusterID,
		Inventory: testInventory, ResyncPeriod: driftCheckPeriod, KeyNames: keyNames, RestartBatchWindow: time.Second, CRDs: testCRDs,
	}).SetupWithManager(mgr, opts)).To(Succeed())
	Expect(mgr.Add(&OrphanSweeper{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Issuers: issuers, Inventory: testInventory,
		Recorder: recorder, ClusterID: clusterID, Period: time.Second, Metrics: metrics, KeyNames: keyNames})).To(Succeed())
	for _, cluster := range []bool{false, true} {
		Expect((&IssuerReconciler{Client: mgr.GetClient(), Issuers: issuers, Cluster: cluster, RecheckPeriod: time.Minute,
			CredentialsPollPeriod: 500 * time.Millisecond, CRDs: testCRDs}).
			SetupWithManager(mgr, opts)).To(Succeed())
	}
	managerDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(managerDone)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
}

// managerDone is closed when the manager has stopped: the control plane is
// stopped only after, or its teardown waits on the manager's connections (a
// short focused run then failed its AfterSuite on kube-apiserver's exit).
var managerDone chan struct{}

func ptrTo[T any](v T) *T { return &v }

type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// watchless lets the manager's client be intercepted; nothing here watches through it.
type watchless struct{ client.Client }

func (watchless) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not supported through the test client")
}

// writeFaults fails the AccessKey reconciler's Secret writes and status
// writes at random, in one namespace, like a crash between two steps.
type writeFaults struct {
	mu             sync.Mutex
	namespace      string
	rate           float64
	secretFailures int
	statusFailures int
	recordFailures int // AccessKey metadata patches: the pending-key record
}

var faults = &writeFaults{}

func (f *writeFaults) set(namespace string, rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.namespace, f.rate, f.secretFailures, f.statusFailures, f.recordFailures = namespace, rate, 0, 0, 0
}

func (f *writeFaults) counts() (secretFailures, statusFailures, recordFailures int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.secretFailures, f.statusFailures, f.recordFailures
}

func (f *writeFaults) fail(obj client.Object, counter *int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.namespace == "" || obj.GetNamespace() != f.namespace || rand.Float64() >= f.rate {
		return false
	}
	*counter++
	return true
}

var errInjected = errors.New("injected write failure")

func (f *writeFaults) funcs() interceptor.Funcs {
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*corev1.Secret); ok && f.fail(obj, &f.secretFailures) {
				return errInjected
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*corev1.Secret); ok && f.fail(obj, &f.secretFailures) {
				return errInjected
			}
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if _, ok := obj.(*iamv1beta1.AccessKey); ok && f.fail(obj, &f.recordFailures) {
				return errInjected
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, subResource string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if _, ok := obj.(*iamv1beta1.AccessKey); ok && subResource == "status" && f.fail(obj, &f.statusFailures) {
				return errInjected
			}
			return c.SubResource(subResource).Patch(ctx, obj, patch, opts...)
		},
	}
}

// secretReadFaults fails the reconciler's reads of Secrets at the API
// server in one namespace, while it is set.
var secretReadFaults struct {
	sync.Mutex
	namespace string
	failed    int
}

func failSecretReads(namespace string) {
	secretReadFaults.Lock()
	defer secretReadFaults.Unlock()
	secretReadFaults.namespace, secretReadFaults.failed = namespace, 0
}

func failedSecretReads() int {
	secretReadFaults.Lock()
	defer secretReadFaults.Unlock()
	return secretReadFaults.failed
}

type failingReads struct{ client.Reader }

func (r failingReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		secretReadFaults.Lock()
		fail := secretReadFaults.namespace != "" && key.Namespace == secretReadFaults.namespace
		if fail {
			secretReadFaults.failed++
		}
		secretReadFaults.Unlock()
		if fail {
			return apierrors.NewServiceUnavailable("injected read failure")
		}
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// fastConfig keeps retries and polling short for tests.
func fastConfig() exoscale.Config {
	return exoscale.Config{QPS: 1000, Burst: 1000, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 100 * time.Millisecond,
		PollInterval: 10 * time.Millisecond}
}

func issuerName(api iamv1beta1.IssuerAPI) string { return "emulator-" + strings.ToLower(string(api)) }

// clusterIssuer is an issuer of the emulator's root key that allows
// everything on any bucket.
func clusterIssuer(name string, api iamv1beta1.IssuerAPI, selector *metav1.LabelSelector) *iamv1beta1.ClusterKeyIssuer {
	return &iamv1beta1.ClusterKeyIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: iamv1beta1.ClusterKeyIssuerSpec{
			IssuerSpec: iamv1beta1.IssuerSpec{
				API: api, Endpoint: endpoint, KeyNamePrefix: "k8s",
				CredentialsRef: iamv1beta1.CredentialsReference{Name: rootSecretName, Namespace: systemNamespace},
				Allowed: iamv1beta1.Allowed{
					Operations: []string{"*"}, Tags: []string{"*"}, Resources: []string{"sos/bucket:*"}, Unrestricted: iamv1beta1.PermissionAllow,
				},
				// Session credentials of seconds, so renewals happen within a test.
				Limits: iamv1beta1.IssuerLimits{MinSessionTTLSeconds: ptr.To(iamv1beta1.SecondsOf(time.Second))},
			},
			NamespaceSelector: selector,
		},
	}
}
