package controller

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale"
)

// finalize runs when an AccessKey is deleted. Delete revokes every key it
// still holds (current, retiring, pending); Orphan, where the issuer that
// minted the current key allows it, keeps that key alone (the others are
// revoked) and releases the Secret from garbage collection. The Secret of a
// Delete goes with the AccessKey through its owner reference.
func (r *AccessKeyReconciler) finalize(ctx context.Context, ak *iamv1alpha1.AccessKey) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ak, iamv1alpha1.RevokeFinalizer) {
		return ctrl.Result{}, nil
	}
	orphan := ak.Spec.DeletionPolicy == iamv1alpha1.DeletionPolicyOrphan && r.orphanAllowed(ctx, ak)
	err := r.revokeHeld(ctx, ak, !orphan)
	if err == nil && orphan {
		err = r.orphan(ctx, ak)
	}
	if err != nil {
		status := ak.Status.DeepCopy()
		setCondition(&status.Conditions, ak.Generation, ConditionSynced, metav1.ConditionFalse, ReasonRevokeFailed,
			fmt.Sprintf("cannot finish deletion: %v", err))
		r.event(ak, corev1.EventTypeWarning, ReasonRevokeFailed, "Delete", "cannot finish deletion: %v", err)
		return ctrl.Result{}, errors.Join(err, r.writeStatus(ctx, ak, status))
	}
	controllerutil.RemoveFinalizer(ak, iamv1alpha1.RevokeFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, ak))
}

// orphanAllowed reports whether the issuer that minted the current key
// allows deletionPolicy Orphan. An issuer that cannot be read allows nothing.
func (r *AccessKeyReconciler) orphanAllowed(ctx context.Context, ak *iamv1alpha1.AccessKey) bool {
	if ak.Status.KeyID == "" {
		return false
	}
	ref := ak.Spec.IssuerRef
	if minted := ak.Status.Issuer; minted != nil {
		ref = iamv1alpha1.IssuerReference{Kind: minted.Kind, Name: minted.Name}
	}
	iss, err := getIssuer(ctx, r.Client, ref, ak.Namespace)
	if err != nil || (ak.Status.Issuer != nil && iss.Object.GetUID() != ak.Status.Issuer.UID) {
		return false
	}
	return allowsOrphan(iss)
}

// revokeHeld revokes the AccessKey's pending and retiring keys, and its
// current key too when withCurrent, each through the issuer that minted it.
func (r *AccessKeyReconciler) revokeHeld(ctx context.Context, ak *iamv1alpha1.AccessKey, withCurrent bool) error {
	s := ak.Status
	type held struct {
		key    exoscale.Key
		issuer *iamv1alpha1.MintingIssuer
	}
	var live []held
	if s.KeyID != "" && withCurrent {
		live = append(live, held{exoscale.Key{ID: s.KeyID, Name: s.KeyName, RoleID: s.RoleID}, s.Issuer})
	}
	for _, old := range s.Retiring {
		live = append(live, held{exoscale.Key{ID: old.KeyID, Name: old.KeyName, RoleID: old.RoleID}, old.Issuer})
	}
	if p := s.Pending; p != nil {
		_, keys, err := r.keysOf(ctx, ak, &p.Issuer)
		if err != nil {
			return err
		}
		found, err := keys.FindByName(ctx, p.KeyName)
		if err != nil {
			return fmt.Errorf("look up pending key %s: %w", p.KeyName, err)
		}
		for _, key := range mintedFor(ak, found) {
			live = append(live, held{key, &p.Issuer})
		}
	}
	for _, h := range live {
		_, keys, err := r.keysOf(ctx, ak, h.issuer)
		if err == nil {
			err = keys.Revoke(ctx, h.key)
		}
		if err != nil {
			return fmt.Errorf("revoke key %s: %w", keyLabel(h.key), err)
		}
		logf.FromContext(ctx).Info("revoked key of a deleted AccessKey", "keyID", h.key.ID)
		r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Delete", "revoked key %s", keyLabel(h.key))
	}
	return nil
}

// orphan keeps the current key: its role is marked so the orphan sweep
// leaves it, and the AccessKey's owner reference is removed from the Secret
// so the garbage collector keeps it.
func (r *AccessKeyReconciler) orphan(ctx context.Context, ak *iamv1alpha1.AccessKey) error {
	_, keys, err := r.keysOf(ctx, ak, ak.Status.Issuer)
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
	if err := r.Patch(ctx, s, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("release Secret %s: %w", s.Name, err)
	}
	r.event(ak, corev1.EventTypeNormal, EventKeyOrphaned, "Delete", "kept key %s and Secret %s (deletionPolicy Orphan)", ak.Status.KeyID, s.Name)
	return nil
}
