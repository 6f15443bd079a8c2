package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// writeStatus writes status through the status subresource when it
// changed. The patch carries the resourceVersion: a pass working from a
// stale copy fails with a conflict instead of overwriting newer state.
func (r *AccessKeyReconciler) writeStatus(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus) error {
	status.ObservedGeneration = &ak.Generation
	r.summarize(ak, status)
	if equality.Semantic.DeepEqual(ak.Status, *status) {
		return nil
	}
	base := ak.DeepCopy()
	ak.Status = *status.DeepCopy()
	if err := r.Status().Patch(ctx, ak, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		ak.Status = base.Status
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// summarize sets Reconciling and Stalled for kstatus: Current only when
// the Secret holds a working key for this generation.
func (r *AccessKeyReconciler) summarize(ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus) {
	reason, message := ReasonMinting, "no key is published for this generation yet"
	if !status.Pending.IsZero() {
		message = fmt.Sprintf("minting key %s", status.Pending.KeyName)
	} else if synced := findCondition(status.Conditions, ConditionSynced); synced != nil && synced.Status == metav1.ConditionFalse &&
		synced.ObservedGeneration == ak.Generation && synced.Reason != "" {
		reason, message = synced.Reason, synced.Message // what it waits for: an issuer, a share of the rate, a revocation
	}
	summarize(&status.Conditions, r.Clock.Now(), ak.Generation, status.Pending.IsZero(), reason, message)
}

// recordOutcome sets the Ready and Synced conditions from a pass's result
// and emits an event for a refusal.
func (r *AccessKeyReconciler) recordOutcome(ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus, err error) {
	gen := ak.Generation
	var deferred *deferral
	if errors.As(err, &deferred) && deferred.Reason == "" {
		return // a short wait for a share of the issuer's rate: nothing to report
	}
	if err == nil && status.KeyID == "" {
		return // nothing minted yet, nothing refused
	}
	if err == nil {
		message := fmt.Sprintf("Secret %s holds key %s", status.SecretName, status.KeyID)
		if !status.Issuer.IsZero() && status.Issuer.API == iamv1beta1.IssuerAPIAccessKeyV2 {
			if unfollowable := asyncUnfollowable(ak.Spec, r.Catalog); len(unfollowable) > 0 {
				warning := asyncWarning(unfollowable)
				message += "; warning: " + warning
				if previous := findCondition(status.Conditions, ConditionReady); previous == nil || previous.Message != message {
					r.event(ak, corev1.EventTypeWarning, EventAsyncUnfollowable, "Mint", "%s", warning)
				}
			}
		}
		setCondition(&status.Conditions, r.Clock.Now(), gen, ConditionReady, metav1.ConditionTrue, ReasonKeyPublished, message)
		setCondition(&status.Conditions, r.Clock.Now(), gen, ConditionSynced, metav1.ConditionTrue, ReasonReconciled, "")
		return
	}
	reason, message := ReasonReconcileError, err.Error()
	var refused *refusal
	var apiErr *exoscale.APIError
	switch {
	case errors.As(err, &refused):
		reason, message = refused.Reason, refused.Message
	case deferred != nil:
		reason = deferred.Reason
	case errors.As(err, &apiErr) && apiErr.Terminal():
		reason = ReasonRejected
	case errors.As(err, &apiErr):
		reason = ReasonAPIError
	}
	previous := findCondition(status.Conditions, ConditionSynced)
	setCondition(&status.Conditions, r.Clock.Now(), gen, ConditionSynced, metav1.ConditionFalse, reason, message)
	if refused != nil || reason == ReasonRejected || status.KeyID == "" {
		setCondition(&status.Conditions, r.Clock.Now(), gen, ConditionReady, metav1.ConditionFalse, reason, message)
	}
	if previous == nil || previous.Reason != reason || previous.Message != message {
		r.event(ak, corev1.EventTypeWarning, reason, "Reconcile", "%s", message)
	}
}

func findCondition(conditions []metav1.Condition, conditionType string) *metav1.Condition {
	for i := range conditions {
		if conditions[i].Type == conditionType {
			return &conditions[i]
		}
	}
	return nil
}

// event records an event on the AccessKey. Messages name keys, never secrets.
func (r *AccessKeyReconciler) event(ak *iamv1beta1.AccessKey, eventType, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ak, nil, eventType, reason, action, format, args...)
	}
}

func keyOf(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

// asyncUnfollowable lists the operations a legacy access key is granted
// that answer with an asynchronous operation, when it is not granted
// get-operation to follow them: the key can start them but not learn how
// they ended. IAM v3 keys need no grant to poll (get-operation is not gated
// by role policies), so only AccessKeyV2 keys are judged.
func asyncUnfollowable(spec iamv1beta1.AccessKeySpec, cat *catalog.Catalog) []string {
	if spec.Access == iamv1beta1.AccessUnrestricted {
		return nil
	}
	granted := slices.Clone(spec.Operations)
	for _, tag := range spec.Tags {
		granted = append(granted, cat.TagOperations(catalog.NormalizeTag(tag))...)
	}
	if slices.Contains(granted, getOperation) {
		return nil
	}
	var async []string
	for _, name := range granted {
		if op, ok := cat.Lookup(name); ok && op.Async() {
			async = append(async, name)
		}
	}
	slices.Sort(async)
	return slices.Compact(async)
}

// getOperation polls an asynchronous operation.
const getOperation = "get-operation"

func asyncWarning(unfollowable []string) string {
	shown := unfollowable
	more := ""
	if len(shown) > 5 {
		shown, more = shown[:5], fmt.Sprintf(" and %d more", len(unfollowable)-5)
	}
	return fmt.Sprintf("the key cannot follow the asynchronous operations it starts (%s%s): add get-operation to see how they end; "+
		"its results may describe resources the key was not granted (docs/guides/exoscale.md)", strings.Join(shown, ", "), more)
}

// minted is the issuer recorded in status, nil when none is.
func minted(m iamv1beta1.MintingIssuer) *iamv1beta1.MintingIssuer {
	if m.IsZero() {
		return nil
	}
	return &m
}

// recorded is the issuer to record in status: the zero value for none.
func recorded(m *iamv1beta1.MintingIssuer) iamv1beta1.MintingIssuer {
	if m == nil {
		return iamv1beta1.MintingIssuer{}
	}
	return *m
}

// timeOf is a recorded time, zero when none is (a record written without
// it can only be forged: the schema requires it).
func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}
