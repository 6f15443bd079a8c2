package controller

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// observe gathers the inputs of the new-key decision: the Secret, and what
// the inventory found of the current key at Exoscale (the issuer that
// minted it lists its organisation once a drift period).
func (r *AccessKeyReconciler) observe(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	iss *issuer, keys exoscale.Keys, current *corev1.Secret, limits issuerLimits) (keyState, error) {
	state := keyState{
		Now:             r.Clock.Now(),
		Status:          *status,
		RestrictionHash: restrictionHash(ak),
		RotateRequest:   ak.Annotations[iamv1beta1.RotateAnnotation],
		RotateEvery:     rotationEvery(ak, limits),
		Session:         ttlOf(ak) > 0,
	}
	state.observeSecret(current)
	sameIssuer := status.Issuer.IsZero() || status.Issuer == iss.identity()
	if status.KeyID != "" && sameIssuer {
		if err := r.observeDrift(ctx, ak, status, iss, keys, &state); err != nil {
			return state, err
		}
	}
	return state, nil
}

// lookUpCurrent looks the current key up at Exoscale and says whether it is gone: a permanent key by its ID,
// a session credential's role by its ID (a session credential itself
// cannot be looked up; it expires).
func lookUpCurrent(ctx context.Context, keys exoscale.Keys, status *iamv1beta1.AccessKeyStatus) (bool, error) {
	if status.ExpiresAt == nil {
		_, err := keys.Get(ctx, status.KeyID)
		if errors.Is(err, exoscale.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("look up key %s: %w", status.KeyID, err)
		}
		return false, nil
	}
	_, err := keys.GetRole(ctx, status.RoleID)
	if errors.Is(err, exoscale.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up role %s: %w", status.RoleID, err)
	}
	return false, nil
}

// observeSecret records what the Secret holds; nil is a missing Secret.
func (s *keyState) observeSecret(current *corev1.Secret) {
	s.SecretFound, s.SecretKeyID, s.SecretChecksumOK = false, "", false
	if current != nil {
		s.SecretFound = true
		s.SecretKeyID = current.Annotations[iamv1beta1.KeyIDAnnotation]
		s.SecretChecksumOK = checksumOK(current)
	}
}
