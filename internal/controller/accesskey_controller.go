package controller

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
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

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// AccessKeyReconciler turns AccessKeys into restricted Exoscale keys
// published in Secrets, following the protocol of DESIGN.md section 3.
type AccessKeyReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold: Secrets exokey has not
	// labelled (to detect conflicts) and fresh copies before drastic steps.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Issuers   *IssuerClients
	Catalog   *catalog.Catalog
	// DriftCheckPeriod is how often each key is looked up at Exoscale.
	DriftCheckPeriod time.Duration
	// Metrics counts rotations; nil counts nothing.
	Metrics *Metrics
	// ClusterID labels the IAM v3 roles this cluster's exokey mints (the
	// UID of the kube-system namespace), for the orphan sweep.
	ClusterID string

	// lastDriftCheck holds, per AccessKey UID, when its key was last looked up.
	lastDriftCheck sync.Map
}

// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=accesskeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;patch

// Reconcile brings one AccessKey to its desired state.
func (r *AccessKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ak := &iamv1alpha1.AccessKey{}
	if err := r.Get(ctx, req.NamespacedName, ak); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ak.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, ak)
	}
	// The finalizer is added with the first pending-key record, before any
	// key exists: an AccessKey that never held a key needs none. One that
	// holds keys and lost it (an edit) gets it back.
	if holdsKeys(ak) && controllerutil.AddFinalizer(ak, iamv1alpha1.RevokeFinalizer) {
		return ctrl.Result{}, r.Update(ctx, ak)
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
		r.DriftCheckPeriod = 10 * time.Minute
	}
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &iamv1alpha1.AccessKey{}, issuerIndex, func(o client.Object) []string {
		ak := o.(*iamv1alpha1.AccessKey)
		return []string{issuerIndexValue(ak.Spec.IssuerRef.Kind, ak.Namespace, ak.Spec.IssuerRef.Name)}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&iamv1alpha1.AccessKey{}).
		Owns(&corev1.Secret{}).
		Watches(&iamv1alpha1.ClusterKeyIssuer{}, handler.EnqueueRequestsFromMapFunc(r.forIssuer(iamv1alpha1.ClusterKeyIssuerKind)),
			builder.WithPredicates(issuerChanged)).
		Watches(&iamv1alpha1.KeyIssuer{}, handler.EnqueueRequestsFromMapFunc(r.forIssuer(iamv1alpha1.KeyIssuerKind)),
			builder.WithPredicates(issuerChanged)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.forNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(opts).
		Named("accesskey").
		Complete(r)
}

// issuerChanged passes an issuer's spec changes and its Ready transitions:
// an AccessKey refused while its issuer was not ready is retried when it is.
var issuerChanged = predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool { return issuerReady(e.ObjectOld) != issuerReady(e.ObjectNew) },
})

func issuerReady(o client.Object) metav1.ConditionStatus {
	var status *iamv1alpha1.IssuerStatus
	switch o := o.(type) {
	case *iamv1alpha1.ClusterKeyIssuer:
		status = &o.Status
	case *iamv1alpha1.KeyIssuer:
		status = &o.Status
	default:
		return metav1.ConditionUnknown
	}
	if c := meta.FindStatusCondition(status.Conditions, ConditionReady); c != nil {
		return c.Status
	}
	return metav1.ConditionUnknown
}

const issuerIndex = "spec.issuerRef"

func issuerIndexValue(kind iamv1alpha1.IssuerKind, namespace, name string) string {
	if kind == iamv1alpha1.KeyIssuerKind {
		return string(kind) + "/" + namespace + "/" + name
	}
	return string(iamv1alpha1.ClusterKeyIssuerKind) + "/" + name
}

// forIssuer enqueues the AccessKeys that use an issuer.
func (r *AccessKeyReconciler) forIssuer(kind iamv1alpha1.IssuerKind) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &iamv1alpha1.AccessKeyList{}
		if err := r.List(ctx, list, client.MatchingFields{issuerIndex: issuerIndexValue(kind, o.GetNamespace(), o.GetName())}); err != nil {
			logf.FromContext(ctx).Error(err, "list the AccessKeys of an issuer", "issuer", o.GetName())
			return nil
		}
		return requestsFor(list)
	}
}

// forNamespace enqueues a namespace's AccessKeys when its labels change, as
// a ClusterKeyIssuer's namespaceSelector may now select it or not.
func (r *AccessKeyReconciler) forNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	list := &iamv1alpha1.AccessKeyList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetName())); err != nil {
		return nil
	}
	return requestsFor(list)
}

func requestsFor(list *iamv1alpha1.AccessKeyList) []reconcile.Request {
	requests := make([]reconcile.Request, 0, len(list.Items))
	for _, ak := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ak.Namespace, Name: ak.Name}})
	}
	return requests
}

// driftCheckDue reports whether the AccessKey's key should be looked up now.
// A key this process has not seen yet (after a restart) gets a random point
// within the period, so a restart does not look every key up at once.
func (r *AccessKeyReconciler) driftCheckDue(ak *iamv1alpha1.AccessKey) bool {
	last, ok := r.lastDriftCheck.Load(ak.UID)
	if !ok {
		spread := time.Duration(rand.Int64N(int64(r.DriftCheckPeriod) + 1))
		last, _ = r.lastDriftCheck.LoadOrStore(ak.UID, r.Clock.Now().Add(-spread))
	}
	return !r.Clock.Now().Before(last.(time.Time).Add(r.DriftCheckPeriod))
}

// nextDriftCheck is when the next lookup is due, with up to 10% jitter so
// keys minted together are not checked together.
func (r *AccessKeyReconciler) nextDriftCheck(ak *iamv1alpha1.AccessKey) time.Duration {
	jitter := time.Duration(rand.Int64N(int64(r.DriftCheckPeriod)/10 + 1))
	last, ok := r.lastDriftCheck.Load(ak.UID)
	if !ok {
		return r.DriftCheckPeriod + jitter
	}
	return max(time.Second, last.(time.Time).Add(r.DriftCheckPeriod).Sub(r.Clock.Now())+jitter)
}

func holdsKeys(ak *iamv1alpha1.AccessKey) bool {
	return ak.Status.KeyID != "" || len(ak.Status.Retiring) > 0 || ak.Status.Pending != nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
