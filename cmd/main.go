// Command manager runs the exokey controllers.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/crds"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/inject"
	"github.com/exokey/exokey/internal/servingcert"

	// Trusted CA roots compiled in, used where the system has none: the
	// image holds nothing but the manager, and must reach
	// https://api-<zone>.exoscale.com.
	_ "golang.org/x/crypto/x509roots/fallback"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(iamv1beta1.AddToScheme(scheme))
	// v1alpha1 is served and converted through v1beta1 by the webhook.
	utilruntime.Must(iamv1alpha1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr             string
		probeAddr               string
		secureMetrics           bool
		enableHTTP2             bool
		leaderElect             bool
		leaderElectionNamespace string
		maxConcurrentReconciles int
		driftCheckPeriod        time.Duration
		resyncPeriod            time.Duration
		issuerRecheckPeriod     time.Duration
		credentialsPollPeriod   time.Duration
		exoscaleQPS             float64
		exoscaleBurst           int
		clusterID               string
		orphanSweep             string
		orphanSweepPeriod       time.Duration
		reconcileTimeout        time.Duration
		leaseDuration           time.Duration
		renewDeadline           time.Duration
		retryPeriod             time.Duration
		gracefulShutdown        time.Duration
		keyNameSecret           string
		keyNameSecretNamespace  string
		maxWorkersPerIssuer     int
		revokeTimeout           time.Duration
		exoscaleCallTimeout     time.Duration
		pprofAddr               string
		enableWebhook           bool
		mode                    string
		enableConversion        bool
		crdCheckPeriod          time.Duration
		migrateStorage          bool
		metricsCertDir          string
		restartBatchWindow      time.Duration
		hook                    inject.ServeOptions
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, e.g. :8443 (secure) or :8080; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorised by the API server.")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "",
		"Directory of a tls.crt and tls.key the secure metrics endpoint serves once they are there (a mounted Secret; the chart mounts the certificate the controllers issue, which names the metrics Service); until then, and without it, a self-signed one.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Serve metrics over HTTP/2 as well (off by default: HTTP/2 rapid-reset exposure).")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so only one replica reconciles at a time.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader lease; defaults to the manager's own namespace.")
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", 16, "How many objects of each kind are reconciled at once.")
	flag.DurationVar(&driftCheckPeriod, "drift-check-period", controller.DefaultDriftCheckPeriod, "How often each issuer lists its keys and roles at Exoscale (two list calls an issuer, with up to 10% jitter): the drift of a key, a role or its policy is put right within it.")
	flag.DurationVar(&resyncPeriod, "resync-period", controller.DefaultResyncPeriod,
		"The longest an AccessKey goes unlooked at: a net under lost events (a pass that finds nothing to do costs no call and no write).")
	flag.DurationVar(&issuerRecheckPeriod, "issuer-recheck-period", 5*time.Minute, "How often issuers' credentials are checked again at Exoscale.")
	flag.DurationVar(&credentialsPollPeriod, "issuer-credentials-poll-period", 30*time.Second,
		"How often issuers' credentials Secrets are read for a change, which is checked at once.")
	flag.Float64Var(&exoscaleQPS, "exoscale-qps", 20, "Requests per second to Exoscale, per issuer.")
	flag.IntVar(&exoscaleBurst, "exoscale-burst", 20, "Burst of requests to Exoscale, per issuer.")
	flag.StringVar(&clusterID, "cluster-id", "",
		"Identity of this cluster on the IAM v3 roles exokey mints; defaults to the UID of the kube-system namespace.")
	flag.StringVar(&orphanSweep, "orphan-sweep", "revoke",
		"What the sweep does with IAM v3 keys exokey minted whose AccessKey is gone: revoke, report (events and a metric) or off.")
	flag.DurationVar(&orphanSweepPeriod, "orphan-sweep-period", time.Hour, "How often the orphan sweep runs.")
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", 15*time.Second,
		"How long a standby waits before taking a lease its holder stopped renewing (a leader that stops cleanly releases it at once).")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader tries to renew its lease before it gives up leading.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", 2*time.Second, "How often replicas try to take or renew the lease.")
	flag.DurationVar(&gracefulShutdown, "graceful-shutdown-timeout", 150*time.Second,
		"How long a stopping manager waits for passes under way (a pass takes at most --reconcile-timeout); set the pod's terminationGracePeriodSeconds above it.")
	flag.StringVar(&keyNameSecret, "key-name-secret", "exokey-key-names",
		"Secret holding the key that makes a key's name prove the AccessKey it was minted for (created when missing).")
	flag.StringVar(&keyNameSecretNamespace, "key-name-secret-namespace", "",
		"Namespace of --key-name-secret (default: $POD_NAMESPACE, else --leader-election-namespace); none: names prove nothing.")
	flag.DurationVar(&reconcileTimeout, "reconcile-timeout", 2*time.Minute,
		"Deadline of one reconcile; what it cut short is recovered on the next pass.")
	flag.IntVar(&maxWorkersPerIssuer, "max-workers-per-issuer", 0,
		"How many workers the AccessKeys of one issuer may hold at once, so a hanging endpoint cannot take them all; 0 is half of --max-concurrent-reconciles.")
	flag.DurationVar(&revokeTimeout, "revoke-timeout", 15*time.Minute,
		"How long a deleted AccessKey waits for its keys to be revoked before it is released anyway, with a Warning event and the exokey_unrevoked_keys metric naming the keys left live.")
	flag.DurationVar(&restartBatchWindow, "restart-batch-window", 5*time.Second,
		"A workload that consumes several AccessKeys rotated within this window is rolled once, this long after the first of them; 0 rolls at once.")
	flag.DurationVar(&exoscaleCallTimeout, "exoscale-call-timeout", 30*time.Second,
		"Deadline of one call to Exoscale, its retries and operation polls included.")
	flag.BoolVar(&enableWebhook, "enable-injection-webhook", false,
		"Serve the pod injection webhook (the chart enables it): pods labelled iam.exokey.io/inject=true get the Secrets of the AccessKeys they name.")
	flag.BoolVar(&enableConversion, "enable-conversion-webhook", false,
		"Serve the CRDs' conversion webhook (iam.exokey.io/v1alpha1 to and from v1beta1, the stored version) on the webhook server, and keep the CRDs' caBundle current with the webhook's certificate. --mode=webhook always serves it.")
	flag.DurationVar(&crdCheckPeriod, "crd-check-period", 30*time.Second,
		"How often the controllers check that the installed CRDs hold every field they write; until they do, nothing is reconciled (condition CRDOutdated).")
	flag.BoolVar(&migrateStorage, "migrate-storage", true,
		"Have the leader rewrite every stored AccessKey and issuer at the storage version (v1beta1) and trim the CRDs' status.storedVersions, once the installed CRDs are current.")
	flag.StringVar(&mode, "mode", modeAll,
		"What this process runs: all (the controllers, and the injection webhook with --enable-injection-webhook); "+
			"controllers (the controllers; with --enable-injection-webhook they issue the webhook's certificate but do not serve it); "+
			"webhook (the injection webhook alone, for its own Deployment: it reads AccessKeys and ServiceAccounts and writes nothing).")
	flag.IntVar(&hook.Port, "webhook-port", 9443, "Port of the injection webhook's server.")
	flag.StringVar(&hook.CertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory of the webhook's tls.crt and tls.key (its Secret, mounted).")
	flag.StringVar(&hook.Namespace, "webhook-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the webhook's Service and certificate Secret (default: $POD_NAMESPACE).")
	flag.StringVar(&hook.ServiceName, "webhook-service-name", "exokey-webhook-service", "Service in front of the webhook: the certificate's name.")
	flag.StringVar(&hook.SecretName, "webhook-secret-name", "exokey-webhook-server-cert", "Secret holding the webhook's certificate and its CA.")
	flag.Func("webhook-dns-names", "More DNS names for the webhook's certificate, comma-separated: a webhook reached by URL (a manager run outside the cluster).",
		func(v string) error { hook.DNSNames = append(hook.DNSNames, strings.Split(v, ",")...); return nil })
	flag.StringVar(&hook.ConfigurationName, "webhook-configuration-name", "exokey-pod-injection", "MutatingWebhookConfiguration whose caBundle is kept current.")
	flag.BoolVar(&hook.CertManager, "webhook-cert-manager", false, "cert-manager issues the webhook's certificate and injects its CA; otherwise the manager issues and rotates them.")
	flag.DurationVar(&hook.CertValidity, "webhook-cert-validity", 90*24*time.Hour, "Validity of the serving certificates the manager issues (renewed a fifth of it before expiry; the CA lasts ten times as long).")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address Go's pprof endpoints bind to, e.g. 127.0.0.1:8082; 0 disables them.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	setMemoryLimit(log)
	if mode != modeAll && mode != modeControllers && mode != modeWebhook {
		log.Error(nil, "--mode takes all, controllers or webhook", "value", mode)
		os.Exit(1)
	}
	if mode == modeWebhook {
		// Nothing to lead: every replica serves, and the certificate comes
		// mounted from the Secret the controllers (or cert-manager) write.
		enableWebhook, enableConversion, leaderElect = true, true, false
	}
	builtin, err := crds.Builtin()
	if err != nil {
		log.Error(err, "reading the built-in CRDs")
		os.Exit(1)
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	var metricsCert *servingcert.Loader
	if secureMetrics && metricsCertDir != "" {
		var err error
		if metricsCert, err = servingcert.New(metricsCertDir).WithSelfSigned("localhost"); err != nil {
			log.Error(err, "unable to make the metrics endpoint's interim certificate")
			os.Exit(1)
		}
		metricsOpts.TLSOpts = append(slices.Clone(tlsOpts), func(c *tls.Config) { c.GetCertificate = metricsCert.GetCertificate })
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "exokey.iam.exokey.io",
		LeaderElectionNamespace: leaderElectionNamespace,
		// The process ends when the manager stops, so the lease is released
		// on the way out and a standby leads at once, not a lease later.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
		GracefulShutdownTimeout:       &gracefulShutdown,
		EventBroadcaster:              controller.NewEventBroadcaster(), //nolint:staticcheck // bounded memory (controller.NewEventRecorder)
		Cache: cache.Options{
			// Nothing exokey caches needs its managed fields, which are
			// often larger than the rest of an AccessKey.
			DefaultTransform: cache.TransformStripManagedFields(),
			// Only the Secrets exokey writes are cached, without their
			// data: the label is tenant-writable.
			// Of pods, only those that opted in to injection, by metadata.
			ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: controller.SecretCache(), controller.InjectedPod(): controller.PodCache()},
		},
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}

	if metricsCert != nil {
		if err := mgr.Add(metricsCert); err != nil {
			log.Error(err, "unable to set up the metrics endpoint's certificate")
			os.Exit(1)
		}
	}

	var gate *controller.CRDGate
	if mode != modeWebhook {
		gate = &controller.CRDGate{Reader: mgr.GetAPIReader(), Builtin: builtin, Period: crdCheckPeriod}
		if err := checkCRDs(gate); err != nil {
			log.Error(err, "the installed CRDs cannot be used: apply this release's CRDs (helm upgrade, or kubectl apply of the installer)")
			os.Exit(1)
		}
		if err := mgr.Add(gate); err != nil {
			log.Error(err, "unable to set up the CRD check")
			os.Exit(1)
		}
		if migrateStorage {
			if err := mgr.Add(&storageMigration{reader: mgr.GetAPIReader(), writer: mgr.GetClient(), gate: gate, crds: builtin}); err != nil {
				log.Error(err, "unable to set up the storage migration")
				os.Exit(1)
			}
		}
		if err := setUpControllers(mgr, controllerOptions{
			clusterID: clusterID, orphanSweep: orphanSweep, orphanSweepPeriod: orphanSweepPeriod,
			keyNameSecret: keyNameSecret, keyNameSecretNamespace: keyNameSecretNamespace, leaderElectionNamespace: leaderElectionNamespace,
			exoscale:         exoscale.Config{QPS: exoscaleQPS, Burst: exoscaleBurst, CallTimeout: exoscaleCallTimeout},
			controller:       ctrlcontroller.Options{MaxConcurrentReconciles: maxConcurrentReconciles, ReconciliationTimeout: reconcileTimeout},
			driftCheckPeriod: driftCheckPeriod, resyncPeriod: resyncPeriod, issuerRecheckPeriod: issuerRecheckPeriod,
			credentialsPollPeriod: credentialsPollPeriod, maxWorkersPerIssuer: maxWorkersPerIssuer, revokeTimeout: revokeTimeout,
			restartBatchWindow: restartBatchWindow, crds: gate,
		}); err != nil {
			log.Error(err, "unable to set up the controllers")
			os.Exit(1)
		}
	}

	// The webhook server's certificate is issued and loaded by a manager of
	// its own, started beside the main one: while objects are stored at
	// v1alpha1 (right after an upgrade), the main manager's caches sync
	// only once the conversion webhook answers, and its other runnables
	// start only after they have. Every replica issues (the first write
	// wins; the others read it back).
	var early ctrl.Manager
	if enableWebhook || enableConversion {
		hook.TLSOpts, hook.Injection = tlsOpts, enableWebhook
		early, err = ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
			Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		})
		if err != nil {
			log.Error(err, "unable to create the certificate's manager")
			os.Exit(1)
		}
		if enableConversion {
			if hook.ConversionCRDs, err = crds.Names(); err != nil {
				log.Error(err, "reading the built-in CRDs")
				os.Exit(1)
			}
		}
		if hook.Namespace == "" {
			log.Error(nil, "the webhook server needs --webhook-namespace (or $POD_NAMESPACE)")
			os.Exit(1)
		}
		if mode != modeWebhook && !hook.CertManager {
			if err := inject.IssueCertificate(early, hook); err != nil {
				log.Error(err, "unable to set up the webhook's certificate")
				os.Exit(1)
			}
		}
		if mode != modeControllers {
			if err := inject.Serve(mgr, early, hook); err != nil {
				log.Error(err, "unable to set up the webhook server")
				os.Exit(1)
			}
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}

	ctx := ctrl.SetupSignalHandler()
	if early != nil {
		go func() {
			if err := early.Start(ctx); err != nil {
				log.Error(err, "the certificate's manager stopped with an error")
				os.Exit(1)
			}
		}()
	}
	log.Info("starting the manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "the manager stopped with an error")
		os.Exit(1)
	}
}

// leftLiveConfigMap records the keys deletions left live, in the manager's
// namespace (docs/operations/metrics.md, ExokeyKeysLeftLive).
const leftLiveConfigMap = "exokey-keys-left-live"

// What a manager process runs (--mode).
const (
	modeAll         = "all"
	modeControllers = "controllers"
	modeWebhook     = "webhook"
)

// controllerOptions are the flags the controllers take.
type controllerOptions struct {
	clusterID, orphanSweep                                         string
	orphanSweepPeriod                                              time.Duration
	keyNameSecret, keyNameSecretNamespace, leaderElectionNamespace string
	exoscale                                                       exoscale.Config
	controller                                                     ctrlcontroller.Options
	driftCheckPeriod, resyncPeriod, issuerRecheckPeriod            time.Duration
	credentialsPollPeriod, revokeTimeout, restartBatchWindow       time.Duration
	maxWorkersPerIssuer                                            int
	// crds holds the controllers while the installed CRDs are outdated.
	crds *controller.CRDGate
}

// setUpControllers adds the AccessKey and issuer controllers, the orphan
// sweep and exokey's metrics to the manager.
func setUpControllers(mgr ctrl.Manager, o controllerOptions) error {
	if o.orphanSweep != "revoke" && o.orphanSweep != "report" && o.orphanSweep != "off" {
		return fmt.Errorf("--orphan-sweep takes revoke, report or off, not %q", o.orphanSweep)
	}
	clusterID := o.clusterID
	if clusterID == "" {
		var err error
		if clusterID, err = controller.ClusterID(context.Background(), mgr.GetAPIReader()); err != nil {
			return fmt.Errorf("reading the cluster's identity (set --cluster-id): %w", err)
		}
	}
	keyNames, err := loadKeyNames(o.keyNameSecretNamespace, o.leaderElectionNamespace, o.keyNameSecret)
	if err != nil {
		return fmt.Errorf("loading the key-name secret: %w", err)
	}
	base := o.exoscale
	base.Metrics = exoscale.NewMetrics(metrics.Registry)
	issuers := &controller.IssuerClients{Reader: mgr.GetAPIReader(), Base: base}
	recorder := controller.NewEventRecorder(mgr)
	exokeyMetrics := controller.NewMetrics(metrics.Registry, mgr.GetCache())
	exokeyMetrics.LeaderOnly(mgr.Elected())
	// Keys deletions leave live are recorded in the manager's namespace.
	leftLive := &controller.LeftLive{Reader: mgr.GetAPIReader(), Writer: mgr.GetClient()}
	if namespace := cmp.Or(o.keyNameSecretNamespace, os.Getenv("POD_NAMESPACE"), o.leaderElectionNamespace); namespace != "" {
		leftLive.Key = types.NamespacedName{Namespace: namespace, Name: leftLiveConfigMap}
	}
	if err := mgr.Add(leftLive); err != nil {
		return err
	}
	exokeyMetrics.LeftLive(leftLive)
	// The reconciler completes and runs the inventory; the sweep reads it.
	inventory := &controller.Inventory{}
	if err := (&controller.AccessKeyReconciler{
		Client:              mgr.GetClient(),
		APIReader:           mgr.GetAPIReader(),
		Recorder:            recorder,
		Issuers:             issuers,
		DriftCheckPeriod:    o.driftCheckPeriod,
		Inventory:           inventory,
		ResyncPeriod:        o.resyncPeriod,
		Metrics:             exokeyMetrics,
		ClusterID:           clusterID,
		KeyNames:            keyNames,
		MaxWorkersPerIssuer: o.maxWorkersPerIssuer,
		RevokeTimeout:       o.revokeTimeout,
		LeftLive:            leftLive,
		RestartBatchWindow:  o.restartBatchWindow,
		CRDs:                o.crds,
	}).SetupWithManager(mgr, o.controller); err != nil {
		return fmt.Errorf("the AccessKey controller: %w", err)
	}
	if o.orphanSweep != "off" {
		if err := mgr.Add(&controller.OrphanSweeper{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Issuers: issuers, Inventory: inventory, Recorder: recorder,
			ClusterID: clusterID, Period: o.orphanSweepPeriod, ReportOnly: o.orphanSweep == "report", Metrics: exokeyMetrics, KeyNames: keyNames,
			LeftLive: leftLive,
		}); err != nil {
			return fmt.Errorf("the orphan sweep: %w", err)
		}
	}
	for _, cluster := range []bool{false, true} {
		if err := (&controller.IssuerReconciler{
			Client: mgr.GetClient(), Issuers: issuers, Cluster: cluster, RecheckPeriod: o.issuerRecheckPeriod,
			CredentialsPollPeriod: o.credentialsPollPeriod, CRDs: o.crds,
		}).SetupWithManager(mgr, o.controller); err != nil {
			return fmt.Errorf("the issuer controller (cluster %t): %w", cluster, err)
		}
	}
	return nil
}

// defaultGCPercent is the manager's GOGC unless the environment sets one.
// Its live heap is small (about 5 MiB per 1,000 AccessKeys): Go's default
// of 100 lets the heap grow to twice that between collections, which in a
// flood of new AccessKeys made most of the manager's growth; at 10,000 keys
// 50 left it just over 10 MiB per 1,000 at the peak. A collection of a heap
// this size costs little CPU (docs/operations/sizing-and-upgrades.md).
const defaultGCPercent = 40

// setMemoryLimit tells the Go runtime the container's memory limit
// (GOMEMLIMIT at 90% of the cgroup's), so it collects harder as it nears
// it instead of being killed, and sets the GC percent. GOMEMLIMIT and GOGC
// in the environment win.
func setMemoryLimit(log logr.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	limit, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup))
	// Without a limit, memlimit sets math.MaxInt64: no limit at all.
	if err != nil || limit <= 0 || limit == math.MaxInt64 {
		log.Info("GOMEMLIMIT is not set: no container memory limit was found")
		return
	}
	log.Info("GOMEMLIMIT is set from the container's memory limit", "bytes", limit)
}

// loadKeyNames reads (or creates) the key-name secret in the manager's
// namespace; without a namespace, key names prove nothing, and it says so.
func loadKeyNames(namespace, leaderElectionNamespace, name string) (*controller.KeyNames, error) {
	namespace = cmp.Or(namespace, os.Getenv("POD_NAMESPACE"), leaderElectionNamespace)
	if namespace == "" || name == "" {
		ctrl.Log.Info("key names prove nothing: no namespace for --key-name-secret (set --key-name-secret-namespace)")
		return nil, nil
	}
	c, err := client.New(ctrl.GetConfigOrDie(), client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return controller.LoadKeyNames(ctx, c, namespace, name)
}

// checkCRDs checks the installed CRDs before the controllers start. A CRD
// that does not serve a version the manager reads cannot be watched at
// all: that ends the process, with what to do. One that lacks fields holds
// the controllers (the gate's condition, CRDOutdated) until it is applied.
func checkCRDs(gate *controller.CRDGate) error {
	if err := gate.Check(ctrl.LoggerInto(context.Background(), ctrl.Log)); err != nil {
		return err
	}
	if unserved := gate.Unserved(); len(unserved) > 0 {
		return fmt.Errorf("%s", strings.Join(unserved, "; "))
	}
	return nil
}

// storageMigration has the leader rewrite every stored object at the
// storage version once the CRDs are current, and trim storedVersions
// (internal/crds.Migrate), retrying until it has.
type storageMigration struct {
	reader client.Reader
	writer client.Client
	gate   *controller.CRDGate
	crds   []*apiextensionsv1.CustomResourceDefinition
}

func (m *storageMigration) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("storage-migration")
	left := slices.Clone(m.crds)
	for len(left) > 0 {
		if m.gate.Refusal() == "" {
			for i := 0; i < len(left); {
				// A CRD's objects are listed and patched within a bound; a
				// CRD that fails is tried again on the next round.
				migrateCtx, cancel := context.WithTimeout(ctx, migrationTimeout)
				done, err := crds.Migrate(migrateCtx, m.reader, m.writer, left[i].Name)
				cancel()
				if err != nil {
					log.Error(err, "moving stored objects to the storage version; retrying", "crd", left[i].Name)
					i++
					continue
				}
				if done.Objects > 0 || !slices.Equal(done.From, []string{done.To}) {
					log.Info("stored objects moved to the storage version", "crd", done.CRD, "from", done.From, "to", done.To, "objects", done.Objects)
				}
				left = slices.Delete(left, i, i+1)
			}
		}
		if len(left) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Second):
		}
	}
	return nil
}

// migrationTimeout bounds the rewrite of one CRD's objects (an empty patch
// each, a few milliseconds apiece).
const migrationTimeout = 10 * time.Minute

// NeedLeaderElection: one replica rewrites.
func (m *storageMigration) NeedLeaderElection() bool { return true }
