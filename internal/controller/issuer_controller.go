package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// IssuerReconciler checks that a KeyIssuer's or ClusterKeyIssuer's
// credentials authenticate and may mint keys, and records how many
// operations they can grant.
type IssuerReconciler struct {
	client.Client
	Issuers *IssuerClients
	// Cluster selects ClusterKeyIssuer (true) or KeyIssuer (false).
	Cluster bool
	// RecheckPeriod is how often credentials are checked again at Exoscale.
	RecheckPeriod time.Duration
	// CredentialsPollPeriod is how often the credentials Secret is read for
	// a change, which is checked at once. The Secret is not labelled for
	// exokey, so it is outside the manager's cache and cannot be watched
	// without caching every Secret in the cluster; one uncached GET per
	// issuer and period is the cheaper way to notice it.
	CredentialsPollPeriod time.Duration

	// Clock is the real clock unless a test sets another.
	Clock clock.PassiveClock
	// CRDs holds reconciling while the installed CRDs are older than the
	// manager; nil checks nothing.
	CRDs *CRDGate

	// checked holds, per issuer, what its last check saw and when.
	checked sync.Map
}

type issuerCheck struct {
	fingerprint string
	at          time.Time
}

// +kubebuilder:rbac:groups=iam.exokey.io,resources=keyissuers;clusterkeyissuers,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=iam.exokey.io,resources=keyissuers/finalizers;clusterkeyissuers/finalizers,verbs=update
// +kubebuilder:rbac:groups=iam.exokey.io,resources=keyissuers/status;clusterkeyissuers/status,verbs=patch

// mintingOperations are what an issuer's key needs to mint and revoke keys.
var mintingOperations = map[iamv1beta1.IssuerAPI][]string{
	iamv1beta1.IssuerAPIIAMv3:       {"create-iam-role", "create-api-key", "delete-api-key", "delete-iam-role"},
	iamv1beta1.IssuerAPIAccessKeyV2: {"create-access-key", "revoke-access-key"},
}

// Reconcile records the state of one issuer.
func (r *IssuerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ref := iamv1beta1.IssuerReference{Kind: iamv1beta1.KeyIssuerKind, Name: req.Name}
	if r.Cluster {
		ref.Kind = iamv1beta1.ClusterKeyIssuerKind
	}
	iss, err := getIssuer(ctx, r.Client, ref, req.Namespace)
	if apierrors.IsNotFound(err) {
		// Deleted: drop what this process kept for it.
		gone := &issuer{Kind: ref.Kind, Key: req.NamespacedName}
		r.checked.Delete(issuerID(gone))
		r.Issuers.forget(gone)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if refusal := r.CRDs.Refusal(); refusal != "" {
		// Checked afresh once the CRDs are current: the Ready this writes
		// must not outlive the refusal.
		r.checked.Delete(issuerID(iss))
		status := iss.Status.DeepCopy()
		status.ObservedGeneration = &iss.Generation
		refuseOutdated(&status.Conditions, r.Clock.Now(), iss.Generation, refusal)
		if !equality.Semantic.DeepEqual(iss.Status, status) {
			base := iss.Object.DeepCopyObject().(client.Object)
			*iss.Status = *status
			if err := r.Status().Patch(ctx, iss.Object, client.MergeFrom(base)); err != nil {
				return ctrl.Result{}, err
			}
		}
		return ctrl.Result{RequeueAfter: r.CRDs.period()}, nil
	}
	if !iss.Object.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, r.finalize(ctx, iss)
	}
	if !controllerutil.ContainsFinalizer(iss.Object, iamv1beta1.InUseFinalizer) {
		base := iss.Object.DeepCopyObject().(client.Object)
		controllerutil.AddFinalizer(iss.Object, iamv1beta1.InUseFinalizer)
		if err := r.Patch(ctx, iss.Object, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("add the in-use finalizer: %w", err)
		}
	}
	id := issuerID(iss)
	fingerprint, credentials, err := r.Issuers.credentialsFingerprint(ctx, iss)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.holdCredentials(ctx, credentials); err != nil {
		return ctrl.Result{}, err
	}
	if last, ok := r.checked.Load(id); ok && last.(issuerCheck).fingerprint == fingerprint &&
		r.Clock.Since(last.(issuerCheck).at) < r.RecheckPeriod {
		return ctrl.Result{RequeueAfter: r.CredentialsPollPeriod}, nil
	}

	status := iss.Status.DeepCopy()
	status.ObservedGeneration = &iss.Generation
	ceiling := Ceiling(iss.Spec.Allowed, catalog.Default())
	status.Ceiling = &ceiling
	reason, message, held, checkErr := r.check(ctx, iss)
	ready := metav1.ConditionFalse
	if reason == ReasonIssuerReady {
		ready = metav1.ConditionTrue
		status.Grantable = ptr.To(int32(len(held)))
		status.SessionCredentials = iamv1beta1.Unavailable
		if slices.Contains(held, assumeOperation) {
			status.SessionCredentials = iamv1beta1.Available
		}
	}
	// Once served, both are set (to what the last check found), as
	// v1alpha1 reads them as values (api/v1alpha1/conversion.go).
	if status.Grantable == nil {
		status.Grantable = ptr.To(int32(0))
	}
	if status.SessionCredentials == "" {
		status.SessionCredentials = iamv1beta1.Unavailable
	}
	setCondition(&status.Conditions, r.Clock.Now(), iss.Generation, ConditionReady, ready, reason, message)
	summarize(&status.Conditions, r.Clock.Now(), iss.Generation, true, reason, message)
	if !equality.Semantic.DeepEqual(iss.Status, status) {
		base := iss.Object.DeepCopyObject().(client.Object)
		*iss.Status = *status
		if err := r.Status().Patch(ctx, iss.Object, client.MergeFrom(base)); err != nil {
			return ctrl.Result{}, errors.Join(checkErr, err)
		}
	}
	if checkErr != nil {
		r.checked.Delete(id)
		return ctrl.Result{}, checkErr
	}
	r.checked.Store(id, issuerCheck{fingerprint: fingerprint, at: r.Clock.Now()})
	return ctrl.Result{RequeueAfter: r.CredentialsPollPeriod}, nil
}

// finalize holds a deleted issuer while AccessKeys hold keys it minted,
// which can only be revoked through it. What holds it is read from status,
// which tenants cannot write: an AccessKey that merely names the issuer in
// its spec cannot keep a cluster admin from deleting it. Its backend (and the credentials it was built from, even if their
// Secret is deleted meanwhile) is kept until then. Each AccessKey's
// deletion brings the issuer back here through the AccessKey watch.
func (r *IssuerReconciler) finalize(ctx context.Context, iss *issuer) error {
	if !controllerutil.ContainsFinalizer(iss.Object, iamv1beta1.InUseFinalizer) {
		return nil
	}
	users, err := r.holders(ctx, iss)
	if err != nil {
		return err
	}
	// The credentials Secret is held while keys it minted are live, and
	// let go once they are revoked, before the issuer itself.
	_, credentials, err := r.Issuers.credentialsFingerprint(ctx, iss)
	if err != nil {
		return err
	}
	if err := r.holdCredentials(ctx, credentials); err != nil {
		return err
	}
	if len(users) > 0 {
		message := fmt.Sprintf("deletion waits for %d AccessKeys that hold keys it minted (%s): delete them, or point them at another issuer",
			len(users), strings.Join(users[:min(len(users), 5)], ", "))
		status := iss.Status.DeepCopy()
		setCondition(&status.Conditions, r.Clock.Now(), iss.Generation, ConditionReady, metav1.ConditionFalse, ReasonInUse, message)
		summarize(&status.Conditions, r.Clock.Now(), iss.Generation, true, ReasonInUse, message)
		if equality.Semantic.DeepEqual(iss.Status, status) {
			return nil
		}
		base := iss.Object.DeepCopyObject().(client.Object)
		*iss.Status = *status
		return client.IgnoreNotFound(r.Status().Patch(ctx, iss.Object, client.MergeFrom(base)))
	}
	base := iss.Object.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(iss.Object, iamv1beta1.InUseFinalizer)
	if err := r.Patch(ctx, iss.Object, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.checked.Delete(issuerID(iss))
	r.Issuers.forget(iss)
	return nil
}

// check returns the Ready reason and message, and the operations the
// issuer's key holds. The error is set for failures worth retrying soon.
func (r *IssuerReconciler) check(ctx context.Context, iss *issuer) (reason, message string, held []string, err error) {
	if err := checkEndpoint(iss.Spec); err != nil {
		return ReasonInsecureEndpoint, err.Error(), nil, nil
	}
	keys, err := r.Issuers.refresh(ctx, iss)
	if credErr, ok := asCredentialsError(err); ok {
		return credErr.Reason, credErr.Message, nil, nil
	}
	if err != nil {
		return ReasonCredentialsMissing, err.Error(), nil, err
	}
	grantable, err := keys.Grantable(ctx)
	held = grantable.Operations
	var apiErr *exoscale.APIError
	switch {
	case errors.Is(err, exoscale.ErrLegacyAPIGone):
		return ReasonLegacyAPIUnavailable, err.Error(), nil, nil
	case errors.As(err, &apiErr) && apiErr.Terminal():
		return ReasonCredentialsInvalid, fmt.Sprintf("the credentials were refused: %v", err), nil, nil
	case errors.As(err, &apiErr) && apiErr.Status == 0:
		return ReasonEndpointUnreachable, fmt.Sprintf("cannot reach Exoscale: %v", err), nil, err
	case err != nil:
		return ReasonEndpointUnreachable, err.Error(), nil, err
	}
	api := iss.Spec.API
	if api == "" {
		api = iamv1beta1.IssuerAPIIAMv3
	}
	for _, op := range mintingOperations[api] {
		if !slices.Contains(held, op) {
			return ReasonCredentialsInvalid, fmt.Sprintf("the issuer's key cannot mint %s keys: it lacks %s", api, op), held, nil
		}
	}
	message = fmt.Sprintf("the issuer's key holds %d operations", len(held))
	if api == iamv1beta1.IssuerAPIIAMv3 && !slices.Contains(held, assumeOperation) {
		// Permanent keys are minted; AccessKeys with spec.ttl are refused.
		message += fmt.Sprintf("; it lacks %s, so it cannot hand out session credentials (spec.ttlSeconds)", assumeOperation)
	}
	message += inventoryWarning(api, held)
	if len(grantable.Depends) > 0 {
		message += fmt.Sprintf("; %d operations are not counted because its policy grants them only for some requests (by %s): "+
			"kubectl exokey can-i says which", len(grantable.Depends), strings.Join(dependsOn(grantable), ", "))
	}
	for _, note := range grantable.Notes {
		message += "; " + note
	}
	r.Issuers.setGrantable(iss, grantable)
	return ReasonIssuerReady, message, held, nil
}

// inventoryOperations are what the inventory calls, by API, and what is
// lost without each.
var inventoryOperations = map[iamv1beta1.IssuerAPI][]struct{ operation, without string }{
	iamv1beta1.IssuerAPIIAMv3: {
		{"list-iam-roles", "each key is looked up on its own every 20 minutes (a call a key), and a role edited at Exoscale is not seen"},
		{"list-api-keys", "each key is looked up on its own every 20 minutes (a call a key)"},
		{"update-iam-role-policy", "a role edited at Exoscale is not put back in place: its key is replaced"},
	},
	iamv1beta1.IssuerAPIAccessKeyV2: {
		{"list-access-keys", "each key is looked up on its own every 20 minutes (a call a key)"},
	},
}

// inventoryWarning names the inventory's operations the issuer's key
// lacks, and what is lost without them; "" when it holds them all.
func inventoryWarning(api iamv1beta1.IssuerAPI, held []string) string {
	var lacks []string
	for _, need := range inventoryOperations[api] {
		if !slices.Contains(held, need.operation) {
			lacks = append(lacks, fmt.Sprintf("without %s, %s", need.operation, need.without))
		}
	}
	if len(lacks) == 0 {
		return ""
	}
	return "; " + strings.Join(lacks, "; ")
}

// assumeOperation is what the issuer's key needs for session credentials.
const assumeOperation = "assume-iam-role"

// SetupWithManager registers the reconciler with the manager.
func (r *IssuerReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.RecheckPeriod <= 0 {
		r.RecheckPeriod = 5 * time.Minute
	}
	if r.CredentialsPollPeriod <= 0 {
		r.CredentialsPollPeriod = 30 * time.Second
	}
	var obj client.Object = &iamv1beta1.KeyIssuer{}
	name := "keyissuer"
	if r.Cluster {
		obj, name = &iamv1beta1.ClusterKeyIssuer{}, "clusterkeyissuer"
	}
	kind := iamv1beta1.KeyIssuerKind
	if r.Cluster {
		kind = iamv1beta1.ClusterKeyIssuerKind
	}
	return ctrl.NewControllerManagedBy(mgr).For(obj).
		// An AccessKey's deletion, or a change of the issuers it depends
		// on, may free an issuer waiting on its in-use finalizer.
		Watches(&iamv1beta1.AccessKey{}, handler.EnqueueRequestsFromMapFunc(r.deletingIssuersOf(kind))).
		WithOptions(opts).Named(name).Complete(r)
}

// holders are the AccessKeys whose status records a key the issuer minted.
func (r *IssuerReconciler) holders(ctx context.Context, iss *issuer) ([]string, error) {
	candidates := &iamv1beta1.AccessKeyList{} // the cache's own objects, only read
	if err := r.List(ctx, candidates, client.MatchingFields{issuerIndex: issuerIndexValue(iss.Kind, iss.Key.Namespace, iss.Key.Name)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var users []string
	for i := range candidates.Items {
		if holdsKeysOf(&candidates.Items[i], iss) {
			users = append(users, candidates.Items[i].Namespace+"/"+candidates.Items[i].Name)
		}
	}
	return users, nil
}

// holdsKeysOf reports whether an AccessKey's status records a key the
// issuer minted (current, retiring or pending). Keys recorded before
// statuses named their issuer count for the issuer the spec names.
func holdsKeysOf(ak *iamv1beta1.AccessKey, iss *issuer) bool {
	mintedBy := func(m *iamv1beta1.MintingIssuer) bool {
		if m == nil {
			return issuerIndexValue(ak.Spec.IssuerRef.Kind, ak.Namespace, ak.Spec.IssuerRef.Name) ==
				issuerIndexValue(iss.Kind, iss.Key.Namespace, iss.Key.Name)
		}
		return m.Kind == iss.Kind && m.Name == iss.Key.Name
	}
	s := ak.Status
	if s.KeyID != "" && mintedBy(minted(s.Issuer)) {
		return true
	}
	for i := range s.Retiring {
		if mintedBy(minted(s.Retiring[i].Issuer)) {
			return true
		}
	}
	return !s.Pending.IsZero() && mintedBy(&s.Pending.Issuer)
}

// deletingIssuersOf maps an AccessKey to the issuers of one kind it depends
// on that are being deleted: only those wait on their AccessKeys.
func (r *IssuerReconciler) deletingIssuersOf(kind iamv1beta1.IssuerKind) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		ak := o.(*iamv1beta1.AccessKey)
		var requests []reconcile.Request
		for _, value := range issuersOf(ak) {
			parts := strings.Split(value, "/")
			var key types.NamespacedName
			switch {
			case kind == iamv1beta1.KeyIssuerKind && parts[0] == string(kind) && len(parts) == 3:
				key = keyOf(parts[1], parts[2])
			case kind == iamv1beta1.ClusterKeyIssuerKind && parts[0] == string(kind) && len(parts) == 2:
				key = keyOf("", parts[1])
			default:
				continue
			}
			iss, err := getIssuer(ctx, r.Client, iamv1beta1.IssuerReference{Kind: kind, Name: key.Name}, key.Namespace)
			if err == nil && !iss.Object.GetDeletionTimestamp().IsZero() {
				requests = append(requests, reconcile.Request{NamespacedName: key})
			}
		}
		return requests
	}
}

// dependsOn lists the request facts some grant of g depends on.
func dependsOn(g exoscale.Grantable) []string {
	var facts []string
	for _, f := range g.Depends {
		facts = append(facts, f...)
	}
	slices.Sort(facts)
	return slices.Compact(facts)
}
