package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// finalize runs when an AccessKey is deleted. Delete revokes every key it
// still holds (current, retiring, pending); Orphan, where the issuer that
// minted the current key allows it, keeps that key alone (the others are
// revoked) and releases the Secret from garbage collection. The Secret of a
// Delete goes with the AccessKey through its owner reference.
//
// A deletion always completes: what cannot be revoked is retried on a
// capped backoff, and after RevokeTimeout the finalizer is released anyway,
// with a Warning event, a log line and a metric naming the keys left live,
// so a namespace is never held hostage by credentials that are gone for good.
func (r *AccessKeyReconciler) finalize(ctx context.Context, ak *iamv1beta1.AccessKey) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ak, iamv1beta1.RevokeFinalizer) {
		return ctrl.Result{}, nil
	}
	orphan := ak.Spec.DeletionPolicy == iamv1beta1.DeletionPolicyOrphan && r.orphanAllowed(ctx, ak)
	left, err := r.revokeHeld(ctx, ak, !orphan)
	if err == nil && orphan {
		err = r.orphan(ctx, ak)
	}
	if err == nil {
		return ctrl.Result{}, r.releaseFinalizer(ctx, ak)
	}
	waited := r.Clock.Now().Sub(ak.DeletionTimestamp.Time)
	if waited >= r.RevokeTimeout {
		r.abandon(ctx, ak, left, err, waited)
		return ctrl.Result{}, r.releaseFinalizer(ctx, ak)
	}
	message := fmt.Sprintf("cannot finish deletion: %v (the finalizer is released anyway at %s)", err,
		ak.DeletionTimestamp.Add(r.RevokeTimeout).UTC().Format(time.RFC3339))
	status := ak.Status.DeepCopy()
	previous := findCondition(status.Conditions, ConditionSynced)
	setCondition(&status.Conditions, r.Clock.Now(), ak.Generation, ConditionSynced, metav1.ConditionFalse, ReasonRevokeFailed, message)
	if previous == nil || previous.Reason != ReasonRevokeFailed {
		r.event(ak, corev1.EventTypeWarning, ReasonRevokeFailed, "Delete", "%s", message)
	}
	retry := min(max(waited, minBackoff), maxBackoff, r.RevokeTimeout-waited)
	return ctrl.Result{RequeueAfter: jittered(retry)}, r.writeStatus(ctx, ak, status)
}

func (r *AccessKeyReconciler) releaseFinalizer(ctx context.Context, ak *iamv1beta1.AccessKey) error {
	base := ak.DeepCopy()
	controllerutil.RemoveFinalizer(ak, iamv1beta1.RevokeFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, ak, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})))
}

// abandon reports the keys a deleted AccessKey leaves live.
func (r *AccessKeyReconciler) abandon(ctx context.Context, ak *iamv1beta1.AccessKey, left []heldKey, err error, waited time.Duration) {
	labels := make([]string, 0, len(left))
	for _, key := range left {
		labels = append(labels, key.label()+" ("+key.issuerName(ak)+")")
	}
	log := logf.FromContext(ctx)
	log.Error(err, "released a deleted AccessKey whose keys could not be revoked: revoke them by hand",
		"keys", labels, "waited", waited.Round(time.Second))
	if r.LeftLive != nil {
		if err := r.LeftLive.Add(ctx, leftLiveKeys(ak, left, r.Clock.Now())...); err != nil {
			log.Error(err, "record the keys left live (the event and this log name them)", "keys", labels)
		}
	}
	r.event(ak, corev1.EventTypeWarning, EventKeysLeftLive, "Delete",
		"released after %s without revoking %s: %v. Revoke them by hand at Exoscale",
		waited.Round(time.Second), strings.Join(labels, ", "), err)
}

// orphanAllowed reports whether the issuer that minted the current key
// allows deletionPolicy Orphan. An issuer that cannot be read allows nothing.
func (r *AccessKeyReconciler) orphanAllowed(ctx context.Context, ak *iamv1beta1.AccessKey) bool {
	if ak.Status.KeyID == "" {
		return false
	}
	ref := ak.Spec.IssuerRef
	if minted := minted(ak.Status.Issuer); minted != nil {
		ref = iamv1beta1.IssuerReference{Kind: minted.Kind, Name: minted.Name}
	}
	iss, err := getIssuer(ctx, r.Client, ref, ak.Namespace)
	if err != nil || (!ak.Status.Issuer.IsZero() && iss.Object.GetUID() != ak.Status.Issuer.UID) {
		return false
	}
	return allowsOrphan(iss)
}

// heldKey is a key an AccessKey holds, with the issuer that minted it.
type heldKey struct {
	key    exoscale.Key
	issuer *iamv1beta1.MintingIssuer
	// pending: only the name is known (a create that was not recorded).
	pending bool
}

func (h heldKey) label() string {
	if h.pending {
		return "pending key " + h.key.Name
	}
	return keyLabel(h.key)
}

func (h heldKey) issuerName(ak *iamv1beta1.AccessKey) string {
	if h.issuer != nil {
		return string(h.issuer.Kind) + "/" + h.issuer.Name
	}
	return string(kindOf(ak.Spec.IssuerRef)) + "/" + ak.Spec.IssuerRef.Name
}

// revokeHeld revokes the AccessKey's pending and retiring keys, and its
// current key too when withCurrent, each through the issuer that minted it.
// It tries every key, and returns those it could not revoke.
func (r *AccessKeyReconciler) revokeHeld(ctx context.Context, ak *iamv1beta1.AccessKey, withCurrent bool) ([]heldKey, error) {
	s := ak.Status
	var live []heldKey
	if s.KeyID != "" && withCurrent {
		live = append(live, heldKey{key: exoscale.Key{ID: s.KeyID, Name: s.KeyName, RoleID: s.RoleID}, issuer: minted(s.Issuer)})
	}
	for _, old := range s.Retiring {
		live = append(live, heldKey{key: exoscale.Key{ID: old.KeyID, Name: old.KeyName, RoleID: old.RoleID}, issuer: minted(old.Issuer)})
	}
	var left []heldKey
	var errs []error
	if p := &s.Pending; !p.IsZero() {
		found, err := r.findPending(ctx, ak, p)
		if err != nil {
			left = append(left, heldKey{key: exoscale.Key{Name: p.KeyName}, issuer: &p.Issuer, pending: true})
			errs = append(errs, err)
		}
		for _, key := range found {
			live = append(live, heldKey{key: key, issuer: &p.Issuer})
		}
	}
	for _, h := range live {
		revoked, err := r.revokeOwn(ctx, ak, h.issuer, h.key, "keys")
		if err == nil && !revoked {
			continue // not this AccessKey's: left alone
		}
		if err != nil {
			left = append(left, h)
			errs = append(errs, fmt.Errorf("revoke key %s: %w", h.label(), err))
			continue
		}
		logf.FromContext(ctx).Info("revoked key of a deleted AccessKey", "keyID", h.key.ID)
		r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Delete", "revoked key %s", h.label())
	}
	return left, errors.Join(errs...)
}

// findPending looks up the keys an unrecorded create may have minted.
func (r *AccessKeyReconciler) findPending(ctx context.Context, ak *iamv1beta1.AccessKey, p *iamv1beta1.PendingKey) ([]exoscale.Key, error) {
	_, keys, err := r.keysOf(ctx, ak, &p.Issuer)
	if err != nil {
		return nil, err
	}
	found, err := keys.FindByName(ctx, p.KeyName)
	if err != nil {
		return nil, fmt.Errorf("look up pending key %s: %w", p.KeyName, err)
	}
	return mintedFor(ak, found, r.KeyNames), nil
}

// orphan keeps the current key: its role is marked so the orphan sweep
// leaves it, and the AccessKey's owner reference is removed from the Secret
// so the garbage collector keeps it.
func (r *AccessKeyReconciler) orphan(ctx context.Context, ak *iamv1beta1.AccessKey) error {
	_, keys, err := r.keysOf(ctx, ak, minted(ak.Status.Issuer))
	if err != nil {
		return err
	}
	current := exoscale.Key{ID: ak.Status.KeyID, Name: ak.Status.KeyName, RoleID: ak.Status.RoleID}
	if err := keys.Release(ctx, current, LabelOrphaned); err != nil && !errors.Is(err, exoscale.ErrNotFound) {
		return fmt.Errorf("mark key %s orphaned: %w", current.ID, err)
	}
	s, err := r.getSecret(ctx, ak)
	if err != nil || s == nil || conflictsWith(s, ak) {
		return err
	}
	base := s.DeepCopy()
	if err := controllerutil.RemoveOwnerReference(ak, s, r.Scheme()); err != nil {
		return err
	}
	// With the lock, as every write of exokey's to a Secret (ownWrites).
	if err := r.Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("release Secret %s: %w", s.Name, err)
	}
	r.event(ak, corev1.EventTypeNormal, EventKeyOrphaned, "Delete", "kept key %s and Secret %s (deletionPolicy Orphan)", ak.Status.KeyID, s.Name)
	return nil
}
