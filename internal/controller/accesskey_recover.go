package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale"
)

// recordPending writes the intent record of a create into status, after the
// finalizer, before the create call. Both writes carry the resourceVersion:
// a pass working from a stale copy fails here, before it creates anything.
// The record lives in status because a tenant can write everything else of
// its AccessKey: a record there would be an instruction anyone could forge.
func (r *AccessKeyReconciler) recordPending(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus,
	p iamv1alpha1.PendingKey) error {
	if !controllerutil.ContainsFinalizer(ak, iamv1alpha1.RevokeFinalizer) {
		base := ak.DeepCopy()
		controllerutil.AddFinalizer(ak, iamv1alpha1.RevokeFinalizer)
		if err := r.Patch(ctx, ak, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			base.DeepCopyInto(ak)
			return fmt.Errorf("add the finalizer: %w", err)
		}
	}
	status.Pending = &p
	if err := r.writeStatus(ctx, ak, status); err != nil {
		status.Pending = nil
		return err
	}
	return nil
}

// recoverPending finishes a create a previous pass started and did not
// record. The key is looked up by the name status recorded, through the
// issuer status recorded, and only keys minted for this very AccessKey are
// touched. One the Secret holds (by key ID) was published: it is adopted.
// Anything else under that name lost its secret with the crash: revoked.
func (r *AccessKeyReconciler) recoverPending(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus,
	current *corev1.Secret) error {
	pending := status.Pending
	if pending == nil {
		return nil
	}
	log := logf.FromContext(ctx).WithValues("keyName", pending.KeyName)
	iss, keys, err := r.keysOf(ctx, ak, &pending.Issuer)
	if err != nil {
		return err
	}
	found, err := keys.FindByName(ctx, pending.KeyName)
	if err != nil {
		return fmt.Errorf("look up pending key %s: %w", pending.KeyName, err)
	}
	found = mintedFor(ak, found, r.KeyNames)
	publishedID := ""
	if current != nil && !conflictsWith(current, ak) {
		publishedID = current.Annotations[iamv1alpha1.KeyIDAnnotation]
	}
	for _, key := range found {
		if key.ID != "" && key.ID == publishedID {
			r.rollTargets(ctx, ak, current.Annotations[iamv1alpha1.ChecksumAnnotation])
			r.promote(ak, status, key, pending.Issuer, pending.StartedAt.Time, retireAfterGrace, limitsOf(iss))
			status.RestrictionHash, status.RotateRequest, status.CeilingHash = pending.RestrictionHash, pending.RotateRequest, pending.CeilingHash
			log.Info("adopted a key published before an interruption", "keyID", key.ID)
			r.event(ak, corev1.EventTypeNormal, EventKeyAdopted, "Adopt", "adopted key %s, published before an interruption", key.ID)
			continue
		}
		if err := keys.Revoke(ctx, key); err != nil {
			return fmt.Errorf("revoke unpublished key %s: %w", pending.KeyName, err)
		}
		log.Info("revoked a key whose create was interrupted before it was published", "keyID", key.ID, "roleID", key.RoleID)
		r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Revoke", "revoked key %s: its create was interrupted before it was published", keyLabel(key))
	}
	status.Pending = nil
	return nil
}

// mintedFor keeps the keys minted for this very AccessKey. On IAMv3 a key's
// role carries the AccessKey's UID; a legacy key carries nothing but its
// name, which proves the UID (KeyNames), or, of the earlier form, was
// generated with a random suffix and recorded in status.
func mintedFor(ak *iamv1alpha1.AccessKey, keys []exoscale.Key, names *KeyNames) []exoscale.Key {
	var out []exoscale.Key
	for _, key := range keys {
		if key.Labels != nil {
			if key.Labels[LabelUID] == string(ak.UID) {
				out = append(out, key)
			}
			continue
		}
		if owned, proving := names.proves(key.Name, ak.UID); owned || !proving {
			out = append(out, key)
		}
	}
	return out
}

func keyLabel(key exoscale.Key) string {
	if key.ID != "" {
		return key.ID
	}
	return "role " + key.RoleID
}

func newPending(ak *iamv1alpha1.AccessKey, iss *issuer, name string, now time.Time) iamv1alpha1.PendingKey {
	return iamv1alpha1.PendingKey{
		KeyName: name, StartedAt: metav1.NewTime(now.UTC().Truncate(time.Second)), Issuer: iss.identity(),
		RestrictionHash: restrictionHash(ak), RotateRequest: ak.Annotations[iamv1alpha1.RotateAnnotation],
		CeilingHash: ceilingHash(iss),
	}
}
