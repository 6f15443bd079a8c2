package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// Retiring keys: a replaced key, or one its issuer no longer allows, stays
// valid for its grace period and is then revoked through the issuer that
// minted it.

// revokeRetiring revokes the retiring keys whose time has come, each
// through the issuer that minted it.
func (r *AccessKeyReconciler) revokeRetiring(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus) error {
	now := r.Clock.Now()
	var kept []iamv1beta1.RetiringKey
	var errs []error
	for _, old := range status.Retiring {
		why := "after its grace period"
		forced := false
		switch {
		case now.Before(timeOf(old.RevokeAt)) && len(old.Consumers) == 0:
			kept = append(kept, old)
			continue
		case now.Before(timeOf(old.RevokeAt)):
			if old.RevokeAfter != nil && now.Before(old.RevokeAfter.Time) {
				kept = append(kept, old)
				continue
			}
			done, progress, err := r.consumersDone(ctx, ak, old)
			if err != nil || !done {
				old.WaitingFor = truncate(progress, 1024)
				kept = append(kept, old)
				continue
			}
			why = "once every consumer had rolled onto its successor"
		case len(old.Consumers) > 0:
			if done, progress, err := r.consumersDone(ctx, ak, old); err != nil || !done {
				forced = true
				why = "at the end of its grace period, before every consumer had rolled onto its successor (" + cmp.Or(progress, "unknown") + ")"
			} else {
				why = "once every consumer had rolled onto its successor"
			}
		}
		revoked, err := r.revokeOwn(ctx, ak, minted(old.Issuer), exoscale.Key{ID: old.KeyID, Name: old.KeyName, RoleID: old.RoleID}, "retiring")
		if err == nil && !revoked {
			continue // not this AccessKey's: left alone and dropped
		}
		if err != nil {
			kept = append(kept, old)
			errs = append(errs, fmt.Errorf("revoke retired key %s: %w", old.KeyID, err))
			continue
		}
		logf.FromContext(ctx).Info("revoked retired key", "keyID", old.KeyID, "when", why)
		if forced {
			r.event(ak, corev1.EventTypeWarning, EventKeyRevokedBeforeRollout, "Revoke", "revoked key %s %s", old.KeyID, why)
			r.Metrics.forcedRevocation()
		} else {
			r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Revoke", "revoked key %s %s", old.KeyID, why)
		}
		if old.RevokeAfter != nil {
			// Published minGracePeriod before RevokeAfter.
			r.Metrics.publishToRevoke(now.Sub(old.RevokeAfter.Add(-minGraceOf(ak))))
		}
	}
	status.Retiring = kept
	return errors.Join(errs...)
}

// liveKeys counts the keys an AccessKey holds: current and retiring.
func liveKeys(status *iamv1beta1.AccessKeyStatus, currentGone bool) int {
	live := len(status.Retiring)
	if status.KeyID != "" && !currentGone {
		live++
	}
	return live
}

// retireBeyondCeiling retires the current key when the issuer that minted
// it no longer allows it (a narrowed ceiling, a namespace it no longer
// selects), unless the issuer keeps such keys. A key whose spec changed is
// known to be within the ceiling only while the ceiling is the one it was
// checked against.
func (r *AccessKeyReconciler) retireBeyondCeiling(ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus, iss *issuer, refused *refusal) {
	if status.KeyID == "" || iss == nil || iss.Spec.KeysBeyondCeiling == iamv1beta1.BeyondCeilingKeep {
		return
	}
	if !status.Issuer.IsZero() && status.Issuer != iss.identity() {
		return // another issuer minted the current key; this one's ceiling does not concern it
	}
	specIsKey := status.RestrictionHash == restrictionHash(ak)
	if !refused.NamespaceRefused && !specIsKey && status.CeilingHash == ceilingHash(iss) {
		return
	}
	// The admin's decision takes effect on the admin's schedule: the
	// AccessKey's own grace period does not count.
	revokeAt := metav1.NewTime(r.Clock.Now().Add(limitsOf(iss).beyondCeilingGrace))
	status.Retiring = append(status.Retiring, iamv1beta1.RetiringKey{
		KeyID: status.KeyID, KeyName: status.KeyName, RoleID: status.RoleID, RevokeAt: &revokeAt, Issuer: status.Issuer,
	})
	r.event(ak, corev1.EventTypeWarning, EventKeyBeyondCeiling, "Retire",
		"key %s is beyond what %s %q allows now: it is revoked at %s (the issuer's keysBeyondCeiling is Revoke, limits.beyondCeilingGraceSeconds %s)",
		status.KeyID, iss.Kind, iss.Key.Name, revokeAt.UTC().Format(time.RFC3339), limitsOf(iss).beyondCeilingGrace)
	clearCurrent(status)
}

func clearCurrent(status *iamv1beta1.AccessKeyStatus) {
	status.KeyID, status.KeyName, status.RoleID, status.Issuer = "", "", "", iamv1beta1.MintingIssuer{}
	status.CreatedAt, status.NextRotationAt, status.ExpiresAt, status.RestrictionHash, status.CeilingHash = nil, nil, nil, "", ""
}
