package controller

import (
	"context"
	"errors"
	"slices"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// AccessKeyReconciler turns AccessKeys into restricted Exoscale keys
// published in Secrets, following the reconcile protocol of
// docs/architecture.md.
type AccessKeyReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold: Secrets exokey has not
	// labelled (to detect conflicts) and fresh copies before drastic steps.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// CRDs holds reconciling while the installed CRDs are older than the
	// manager; nil checks nothing.
	CRDs    *CRDGate
	Issuers *IssuerClients
	Catalog *catalog.Catalog
	// DriftCheckPeriod is how often each issuer's inventory is taken
	// (default DefaultDriftCheckPeriod).
	DriftCheckPeriod time.Duration
	// ResyncPeriod is the longest an AccessKey goes unlooked at, whatever
	// it waits for: a net under lost events and clocks that jump (default
	// DefaultResyncPeriod). A pass that finds nothing to do costs no call
	// and no write.
	ResyncPeriod time.Duration
	// Inventory lists what exists at Exoscale and sends back the
	// AccessKeys whose keys drifted; SetupWithManager fills in what it
	// leaves unset and adds it to the manager. Share it with the orphan sweep.
	Inventory *Inventory
	// Metrics counts rotations; nil counts nothing.
	Metrics *Metrics
	// ClusterID labels the IAM v3 roles this cluster's exokey mints (the
	// UID of the kube-system namespace), for the orphan sweep.
	ClusterID string
	// KeyNames names keys so that a name proves the AccessKey it was minted
	// for (legacy access keys carry nothing else); nil names them with
	// random suffixes that prove nothing.
	KeyNames *KeyNames
	// MaxWorkersPerIssuer bounds how many workers the AccessKeys of one
	// issuer hold at once while other issuers have work, so an issuer whose
	// endpoint hangs cannot take them all; 0 is half of the controller's
	// workers. An issuer alone may use all workers but one.
	MaxWorkersPerIssuer int
	// RevokeTimeout is how long a deleted AccessKey waits for its keys to
	// be revoked before its finalizer is released anyway, with a Warning
	// and a metric naming the keys left live (default 15 minutes).
	RevokeTimeout time.Duration
	// PendingSettle is how long an interrupted create may still produce a
	// key at Exoscale after it started (default DefaultPendingSettle): a
	// pending record whose key is not found is kept until then.
	PendingSettle time.Duration
	// LeftLive records the keys a deletion leaves live (nil: events and
	// logs only).
	LeftLive *LeftLive
	// RestartBatchWindow gathers the rolls of a workload that consumes
	// several AccessKeys into one: a roll is made this long after the first
	// request for the workload (0: at once).
	RestartBatchWindow time.Duration
	rolls              *rollBatcher

	slots *issuerSlots
	// settled are the creates this process saw end, by AccessKey UID and
	// key name: their pending records need not wait PendingSettle.
	settled settledCreates
	// own holds the writes made through Client, whose watch events are
	// not reconciled again.
	own *ownWrites
}

// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys/status,verbs=patch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get
// +kubebuilder:rbac:groups=argoproj.io,resources=rollouts,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch

// slotPatience is how long a worker waits for a slot of the AccessKey's
// issuer before it sends the AccessKey back to the queue.
const slotPatience = 250 * time.Millisecond

// DefaultDriftCheckPeriod is how often each issuer's inventory is taken by
// default: two list calls an issuer (one for legacy keys), whatever the
// number of keys (docs/performance.md).
const DefaultDriftCheckPeriod = time.Minute

// DefaultResyncPeriod is how often every AccessKey is looked at by default.
const DefaultResyncPeriod = 10 * time.Minute

// Reconcile brings one AccessKey to its desired state.
func (r *AccessKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ak := &iamv1beta1.AccessKey{}
	if err := r.Get(ctx, req.NamespacedName, ak); err != nil {
		if isNotFound(err) {
			r.Inventory.forget(req.NamespacedName) // gone: nothing of it is kept
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if refusal := r.CRDs.Refusal(); refusal != "" {
		// Nothing is written but the conditions, which every schema has.
		status := ak.Status.DeepCopy()
		refuseOutdated(&status.Conditions, r.Clock.Now(), ak.Generation, refusal)
		return ctrl.Result{RequeueAfter: r.CRDs.period()}, r.writeStatus(ctx, ak, status)
	}
	// No issuer holds more than its share of the workers, however long its
	// endpoint takes to answer: the others' AccessKeys go on meanwhile.
	release, ok := r.slots.takeWithin(ctx, issuerIndexValue(ak.Spec.IssuerRef.Kind, ak.Namespace, ak.Spec.IssuerRef.Name), r.Clock.Now, slotPatience)
	if !ok {
		return ctrl.Result{RequeueAfter: jittered(time.Second)}, nil
	}
	defer release()
	if !ak.Status.Pending.IsZero() {
		// A create in flight is acted on from the API server's copy: the
		// cache may still show the record a pass just cleared, and acting
		// on it costs a lookup of the key by name at Exoscale.
		if err := r.APIReader.Get(ctx, req.NamespacedName, ak); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if !ak.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, ak)
	}
	// The finalizer is added with the first pending-key record, before any
	// key exists: an AccessKey that never held a key needs none. One that
	// holds keys and lost it (an edit) gets it back, and the pass goes on.
	if holdsKeys(ak) && controllerutil.AddFinalizer(ak, iamv1beta1.RevokeFinalizer) {
		if err := r.Update(ctx, ak); err != nil {
			return ctrl.Result{}, err
		}
	}
	if r.namespaceTerminating(ctx, ak.Namespace) {
		// The namespace controller deletes the Secret and the AccessKey in
		// no set order: a key minted for a Secret it removed could not be
		// published. The AccessKey's own deletion revokes what it holds.
		return ctrl.Result{}, nil
	}
	if wait := r.takeFirstMint(ctx, ak); wait > 0 {
		// Before anything is read from the API server or written: a storm
		// of first keys stays cheap, and their status says nothing new.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	status := ak.Status.DeepCopy()
	result, err := r.reconcileKey(ctx, ak, status)
	if statusErr := r.writeStatus(ctx, ak, status); statusErr != nil {
		return ctrl.Result{}, errors.Join(err, statusErr)
	}
	return result, err
}

// SetupWithManager registers the reconciler and its watches.
func (r *AccessKeyReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Catalog == nil {
		r.Catalog = catalog.Default()
	}
	if r.DriftCheckPeriod <= 0 {
		r.DriftCheckPeriod = DefaultDriftCheckPeriod
	}
	if r.ResyncPeriod <= 0 {
		r.ResyncPeriod = DefaultResyncPeriod
	}
	if r.PendingSettle <= 0 {
		r.PendingSettle = DefaultPendingSettle
	}
	if r.RevokeTimeout <= 0 {
		r.RevokeTimeout = 15 * time.Minute
	}
	workers := max(opts.MaxConcurrentReconciles, 1)
	if r.MaxWorkersPerIssuer <= 0 {
		r.MaxWorkersPerIssuer = max(1, workers/2)
	}
	r.slots = newIssuerSlots(workers, r.MaxWorkersPerIssuer)
	r.rolls = &rollBatcher{window: r.RestartBatchWindow, roll: r.rollNow, onDone: r.rolledInBatch}
	// Every pass ends with its own next wake (nextWake), so the watch
	// events of its own writes would only repeat it.
	r.own = newOwnWrites()
	r.Client = recordingClient{Client: r.Client, own: r.own}
	if opts.RateLimiter == nil {
		// Failures back off from 5 ms as usual, but no further than 5
		// minutes (the default waits up to 16), so whatever failed is tried
		// again soon after its cause is fixed.
		opts.RateLimiter = workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxBackoff),
			&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(10), 100)})
	}
	if err := indexIssuers(mgr); err != nil {
		return err
	}
	if err := indexConsumers(mgr); err != nil {
		return err
	}
	if err := r.setUpInventory(mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&iamv1beta1.AccessKey{}, builder.WithPredicates(r.own.notOwn("AccessKey"))).
		Owns(&corev1.Secret{}, builder.WithPredicates(r.own.notOwn("Secret"))).
		Watches(&iamv1beta1.ClusterKeyIssuer{}, handler.EnqueueRequestsFromMapFunc(r.forIssuer(iamv1beta1.ClusterKeyIssuerKind)),
			builder.WithPredicates(issuerChanged)).
		Watches(&iamv1beta1.KeyIssuer{}, handler.EnqueueRequestsFromMapFunc(r.forIssuer(iamv1beta1.KeyIssuerKind)),
			builder.WithPredicates(issuerChanged)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.forNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.Inventory.events, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Named("accesskey").
		Complete(r)
}

// setUpInventory completes the inventory from the reconciler and runs it
// in the manager.
func (r *AccessKeyReconciler) setUpInventory(mgr ctrl.Manager) error {
	if r.Inventory == nil {
		r.Inventory = &Inventory{}
	}
	inv := r.Inventory
	if inv.Reader == nil {
		inv.Reader = mgr.GetClient()
	}
	if inv.Issuers == nil {
		inv.Issuers = r.Issuers
	}
	if inv.Catalog == nil {
		inv.Catalog = r.Catalog
	}
	if inv.ClusterID == "" {
		inv.ClusterID = r.ClusterID
	}
	if inv.Period <= 0 {
		inv.Period = r.DriftCheckPeriod
	}
	if inv.Clock == nil {
		inv.Clock = r.Clock
	}
	inv.events = make(chan event.GenericEvent, 1024)
	return mgr.Add(inv)
}

// issuerChanged passes an issuer's spec changes, its Ready transitions,
// whether it can assume roles and how much its key holds: an AccessKey
// refused while its issuer could not serve it is retried when it can (an
// organisation policy changed at Exoscale changes what the key holds).
var issuerChanged = predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return issuerReady(e.ObjectOld) != issuerReady(e.ObjectNew) || canAssume(e.ObjectOld) != canAssume(e.ObjectNew) ||
			grantableCount(e.ObjectOld) != grantableCount(e.ObjectNew)
	},
})

// issuerStatus is the status of a KeyIssuer or ClusterKeyIssuer; nil for
// anything else.
func issuerStatus(o client.Object) *iamv1beta1.IssuerStatus {
	switch o := o.(type) {
	case *iamv1beta1.ClusterKeyIssuer:
		return &o.Status
	case *iamv1beta1.KeyIssuer:
		return &o.Status
	}
	return nil
}

func canAssume(o client.Object) bool {
	status := issuerStatus(o)
	return status != nil && status.SessionCredentials == iamv1beta1.Available
}

func grantableCount(o client.Object) int {
	if status := issuerStatus(o); status != nil && status.Grantable != nil {
		return int(*status.Grantable)
	}
	return 0
}

func issuerReady(o client.Object) metav1.ConditionStatus {
	status := issuerStatus(o)
	if status == nil {
		return metav1.ConditionUnknown
	}
	if c := meta.FindStatusCondition(status.Conditions, ConditionReady); c != nil {
		return c.Status
	}
	return metav1.ConditionUnknown
}

// issuerIndex indexes AccessKeys by every issuer they depend on: the one
// their spec names, and those that minted the keys they hold.
const issuerIndex = "issuers"

func indexIssuers(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &iamv1beta1.AccessKey{}, issuerIndex, func(o client.Object) []string {
		return issuersOf(o.(*iamv1beta1.AccessKey))
	})
}

// issuersOf lists the issuers an AccessKey depends on, as issuerIndex values.
func issuersOf(ak *iamv1beta1.AccessKey) []string {
	values := []string{issuerIndexValue(ak.Spec.IssuerRef.Kind, ak.Namespace, ak.Spec.IssuerRef.Name)}
	add := func(m *iamv1beta1.MintingIssuer) {
		if m != nil && !slices.Contains(values, issuerIndexValue(m.Kind, ak.Namespace, m.Name)) {
			values = append(values, issuerIndexValue(m.Kind, ak.Namespace, m.Name))
		}
	}
	add(minted(ak.Status.Issuer))
	for i := range ak.Status.Retiring {
		add(minted(ak.Status.Retiring[i].Issuer))
	}
	if !ak.Status.Pending.IsZero() {
		add(&ak.Status.Pending.Issuer)
	}
	return values
}

func issuerIndexValue(kind iamv1beta1.IssuerKind, namespace, name string) string {
	if kind == iamv1beta1.KeyIssuerKind {
		return string(kind) + "/" + namespace + "/" + name
	}
	return string(iamv1beta1.ClusterKeyIssuerKind) + "/" + name
}

// forIssuer enqueues the AccessKeys that use an issuer.
func (r *AccessKeyReconciler) forIssuer(kind iamv1beta1.IssuerKind) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &iamv1beta1.AccessKeyList{}
		if err := r.List(ctx, list, client.MatchingFields{issuerIndex: issuerIndexValue(kind, o.GetNamespace(), o.GetName())}, client.UnsafeDisableDeepCopy); err != nil {
			logf.FromContext(ctx).Error(err, "list the AccessKeys of an issuer", "issuer", o.GetName())
			return nil
		}
		return requestsFor(list)
	}
}

// forNamespace enqueues a namespace's AccessKeys when its labels change, as
// a ClusterKeyIssuer's namespaceSelector may now select it or not.
func (r *AccessKeyReconciler) forNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	list := &iamv1beta1.AccessKeyList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetName()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	return requestsFor(list)
}

// requestsFor names the AccessKeys of a list, which may be the cache's own
// objects (client.UnsafeDisableDeepCopy: an issuer's AccessKeys are
// listed on each of its changes, and only their names are read).
func requestsFor(list *iamv1beta1.AccessKeyList) []reconcile.Request {
	requests := make([]reconcile.Request, 0, len(list.Items))
	for _, ak := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ak.Namespace, Name: ak.Name}})
	}
	return requests
}

// namespaceTerminating reports whether the namespace is being deleted, as
// the cache sees it; one that cannot be read is not.
func (r *AccessKeyReconciler) namespaceTerminating(ctx context.Context, name string) bool {
	ns := &corev1.Namespace{}
	return r.Get(ctx, types.NamespacedName{Name: name}, ns) == nil && !ns.DeletionTimestamp.IsZero()
}

func holdsKeys(ak *iamv1beta1.AccessKey) bool {
	return ak.Status.KeyID != "" || len(ak.Status.Retiring) > 0 || !ak.Status.Pending.IsZero()
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
