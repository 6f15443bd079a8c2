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
// still holds (current, retiring, pending); Orphan keeps the key and
// releases the Secret from garbage collection. The Secret of a Delete goes
// with the AccessKey through its owner reference.
func (r *AccessKeyReconciler) finalize(ctx context.Context, ak *iamv1alpha1.AccessKey) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ak, iamv1alpha1.RevokeFinalizer) {
		return ctrl.Result{}, nil
	}
	var err error
	if ak.Spec.DeletionPolicy == iamv1alpha1.DeletionPolicyOrphan {
		err = r.orphan(ctx, ak)
	} else {
		err = r.revokeAll(ctx, ak)
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

func (r *AccessKeyReconciler) revokeAll(ctx context.Context, ak *iamv1alpha1.AccessKey) error {
	s := ak.Status
	pending, err := unsettledPending(ak)
	if err != nil {
		return err
	}
	if s.KeyID == "" && len(s.Retiring) == 0 && pending == nil {
		return nil
	}
	iss, err := getIssuer(ctx, r.Client, ak.Spec.IssuerRef, ak.Namespace)
	if err != nil {
		return fmt.Errorf("the issuer is needed to revoke the keys: %w", err)
	}
	keys, err := r.Issuers.Keys(ctx, iss)
	if err != nil {
		return fmt.Errorf("the issuer is needed to revoke the keys: %w", err)
	}
	live := []exoscale.Key{}
	if s.KeyID != "" {
		live = append(live, exoscale.Key{ID: s.KeyID, Name: s.KeyName, RoleID: s.RoleID})
	}
	for _, old := range s.Retiring {
		live = append(live, exoscale.Key{ID: old.KeyID, Name: old.KeyName, RoleID: old.RoleID})
	}
	if pending != nil {
		found, err := keys.FindByName(ctx, pending.KeyName)
		if err != nil {
			return fmt.Errorf("look up pending key %s: %w", pending.KeyName, err)
		}
		live = append(live, found...)
	}
	for _, key := range live {
		if err := keys.Revoke(ctx, key); err != nil {
			return fmt.Errorf("revoke key %s: %w", key.ID, err)
		}
		logf.FromContext(ctx).Info("revoked key of a deleted AccessKey", "keyID", key.ID)
		r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Delete", "revoked key %s", key.ID)
	}
	return nil
}

// orphan removes the AccessKey's owner reference from its Secret, so the
// garbage collector keeps it.
func (r *AccessKeyReconciler) orphan(ctx context.Context, ak *iamv1alpha1.AccessKey) error {
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
