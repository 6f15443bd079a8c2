package controller

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// Ownership: status is exokey's memory, and a tenant may be able to write
// it (where the status admission policy is not installed). Before a key
// named in status is revoked, exokey asks Exoscale whether it was minted
// for this very AccessKey.

// provenOwn checks at Exoscale that a key status names was minted for this
// AccessKey, and returns it with the role Exoscale binds it to (not the one
// status names). On IAMv3 the key's role, read from Exoscale, must carry
// the AccessKey's UID and this cluster's ID. A key that is gone proves
// nothing and needs nothing: it is returned as owned with its ID cleared,
// and its role checked alone. Legacy access keys carry no labels: the name
// Exoscale holds for the key must prove the AccessKey's UID (KeyNames).
func (r *AccessKeyReconciler) provenOwn(ctx context.Context, ak *iamv1beta1.AccessKey, iss *issuer, keys exoscale.Keys,
	key exoscale.Key) (exoscale.Key, bool, error) {
	if iss.Spec.API == iamv1beta1.IssuerAPIAccessKeyV2 {
		if key.ID == "" {
			return key, true, nil
		}
		live, err := keys.Get(ctx, key.ID)
		switch {
		case errors.Is(err, exoscale.ErrNotFound):
			return key, true, nil // gone: revoking it is a no-op
		case err != nil:
			return key, false, fmt.Errorf("look up key %s: %w", key.ID, err)
		}
		// The name Exoscale holds, not the one status names; a name of the
		// earlier form proves nothing either way and is trusted as before.
		owned, proving := r.KeyNames.proves(live.Name, ak.UID)
		return key, owned || !proving, nil
	}
	if key.ID != "" && r.Inventory != nil {
		// The inventory's last listing answers for keys it holds, so a
		// namespace's deletion costs no lookup per key.
		if roleID, uid, listed := r.Inventory.listedOwner(iss, key.ID); listed {
			key.RoleID = roleID
			return key, uid == string(ak.UID), nil
		}
	}
	if key.ID != "" {
		live, err := keys.Get(ctx, key.ID)
		switch {
		case errors.Is(err, exoscale.ErrNotFound):
			key.ID = "" // gone (or a session key, which get-api-key does not know): the role decides
		case err != nil:
			return key, false, fmt.Errorf("look up key %s: %w", key.ID, err)
		default:
			key.RoleID = live.RoleID
		}
	}
	if key.RoleID == "" {
		return key, true, nil
	}
	role, err := keys.GetRole(ctx, key.RoleID)
	if errors.Is(err, exoscale.ErrNotFound) {
		// A key bound to a role that is gone grants nothing: revoking it
		// harms no one.
		key.RoleID = ""
		return key, true, nil
	}
	if err != nil {
		return key, false, fmt.Errorf("look up role %s: %w", key.RoleID, err)
	}
	owned := role.Labels[LabelUID] == string(ak.UID) && (r.ClusterID == "" || role.Labels[LabelCluster] == r.ClusterID)
	return key, owned, nil
}

// revokeOwn revokes a key status names through the issuer that minted it,
// once Exoscale shows it was minted for this AccessKey. A key that is not
// is left alone and reported: revoked is false, and so is err, for the
// caller to drop it from status.
func (r *AccessKeyReconciler) revokeOwn(ctx context.Context, ak *iamv1beta1.AccessKey, minted *iamv1beta1.MintingIssuer,
	key exoscale.Key, where string) (revoked bool, err error) {
	iss, keys, err := r.keysOf(ctx, ak, minted)
	if err != nil {
		return false, err
	}
	key, owned, err := r.provenOwn(ctx, ak, iss, keys, key)
	switch {
	case err != nil:
		return false, err
	case !owned:
		r.disown(ctx, ak, iss, key, where)
		return false, nil
	}
	return true, keys.Revoke(ctx, key)
}

// disown reports a key status named that was not minted for the AccessKey:
// it is left alone, and the caller drops it from status.
func (r *AccessKeyReconciler) disown(ctx context.Context, ak *iamv1beta1.AccessKey, iss *issuer, key exoscale.Key, where string) {
	logf.FromContext(ctx).Info("left alone a key status named that was not minted for this AccessKey",
		"keyID", key.ID, "roleID", key.RoleID, "in", where)
	r.event(ak, corev1.EventTypeWarning, EventKeyNotOwned, "Revoke",
		"key %s, named in status.%s, was not minted for this AccessKey at Exoscale: it is left alone and dropped from status", keyLabel(key), where)
	r.Metrics.unprovenKey(iss)
}
