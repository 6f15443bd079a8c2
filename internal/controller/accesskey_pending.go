package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
)

// pendingKey is the intent record of a create: the key's name, when the
// create started and what the key is minted for. It is written, together
// with the finalizer, before the create call, so a pass that finds a key
// named here but not recorded in status knows a create was interrupted.
//
// The record is kept in the PendingKeyAnnotation rather than in status so
// that it shares one write with the finalizer: a key costs one metadata
// write, one Secret write and one status write. Once the key is the
// current or a retiring one the record is settled and left in place; the
// next create overwrites it.
type pendingKey struct {
	KeyName   string    `json:"keyName"`
	StartedAt time.Time `json:"startedAt"`
	// RestrictionHash and RotateRequest are what the key is minted for, so
	// a key adopted after an interruption is not replaced again needlessly.
	RestrictionHash string `json:"restrictionHash,omitempty"`
	RotateRequest   string `json:"rotateRequest,omitempty"`
}

// unsettledPending returns the create in flight that status does not
// account for, or nil. A record that cannot be read is reported as an error
// rather than ignored: it may name a live key.
func unsettledPending(ak *iamv1alpha1.AccessKey) (*pendingKey, error) {
	raw, ok := ak.Annotations[iamv1alpha1.PendingKeyAnnotation]
	if !ok {
		return nil, nil
	}
	p := &pendingKey{}
	if err := json.Unmarshal([]byte(raw), p); err != nil || p.KeyName == "" {
		return nil, refuse(ReasonInvalidSpec, "annotation %s is not a record exokey wrote; remove it to continue",
			iamv1alpha1.PendingKeyAnnotation)
	}
	if p.KeyName == ak.Status.KeyName || slices.ContainsFunc(ak.Status.Retiring, func(k iamv1alpha1.RetiringKey) bool {
		return k.KeyName == p.KeyName
	}) {
		return nil, nil
	}
	return p, nil
}

// recordPending writes the intent record and the finalizer in one patch.
// The patch carries the resourceVersion: a pass working from a stale copy
// fails here, before it creates anything.
func (r *AccessKeyReconciler) recordPending(ctx context.Context, ak *iamv1alpha1.AccessKey, p pendingKey) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	base := ak.DeepCopy()
	controllerutil.AddFinalizer(ak, iamv1alpha1.RevokeFinalizer)
	if ak.Annotations == nil {
		ak.Annotations = map[string]string{}
	}
	ak.Annotations[iamv1alpha1.PendingKeyAnnotation] = string(raw)
	return r.patchMetadata(ctx, ak, base)
}

// clearPending drops an intent record whose key was revoked or never made.
func (r *AccessKeyReconciler) clearPending(ctx context.Context, ak *iamv1alpha1.AccessKey) error {
	if _, ok := ak.Annotations[iamv1alpha1.PendingKeyAnnotation]; !ok {
		return nil
	}
	base := ak.DeepCopy()
	delete(ak.Annotations, iamv1alpha1.PendingKeyAnnotation)
	return r.patchMetadata(ctx, ak, base)
}

// patchMetadata patches ak's metadata from base; ak becomes the server's
// answer, or base again when the patch fails.
func (r *AccessKeyReconciler) patchMetadata(ctx context.Context, ak, base *iamv1alpha1.AccessKey) error {
	if err := r.Patch(ctx, ak, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		base.DeepCopyInto(ak)
		return fmt.Errorf("patch AccessKey metadata: %w", err)
	}
	return nil
}
