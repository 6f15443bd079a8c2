package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale"
)

// observe gathers the inputs of the new-key decision; it looks the key up
// at Exoscale once per drift-check period, through the issuer that minted it.
func (r *AccessKeyReconciler) observe(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus,
	iss *issuer, keys exoscale.Keys, current *corev1.Secret, limits issuerLimits) (keyState, error) {
	state := keyState{
		Now:             r.Clock.Now(),
		Status:          *status,
		RestrictionHash: restrictionHash(ak),
		RotateRequest:   ak.Annotations[iamv1alpha1.RotateAnnotation],
		RotateEvery:     rotationEvery(ak, limits),
		Session:         ttlOf(ak) > 0,
	}
	state.observeSecret(current)
	sameIssuer := status.Issuer == nil || *status.Issuer == iss.identity()
	if status.KeyID != "" && sameIssuer && r.driftCheckDue(ak) {
		gone, err := lookUpCurrent(ctx, keys, status)
		if err != nil {
			return state, err
		}
		state.KeyGone = gone
		r.checkedDrift(ak, r.Clock.Now())
	}
	return state, nil
}

// lookUpCurrent looks the current key up at Exoscale and says whether it is gone: a permanent key by its ID,
// a session credential's role by its ID (a session credential itself
// cannot be looked up; it expires).
func lookUpCurrent(ctx context.Context, keys exoscale.Keys, status *iamv1alpha1.AccessKeyStatus) (bool, error) {
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

func checksumOK(s *corev1.Secret) bool {
	return s.Annotations[iamv1alpha1.ChecksumAnnotation] == observedChecksum(s)
}

// observeSecret records what the Secret holds; nil is a missing Secret.
func (s *keyState) observeSecret(current *corev1.Secret) {
	s.SecretFound, s.SecretKeyID, s.SecretChecksumOK = false, "", false
	if current != nil {
		s.SecretFound = true
		s.SecretKeyID = current.Annotations[iamv1alpha1.KeyIDAnnotation]
		s.SecretChecksumOK = checksumOK(current)
	}
}

// driftCheck is when an AccessKey's key was last looked up at Exoscale.
// It is kept by name and dropped when the AccessKey goes; the UID tells a
// new AccessKey of the same name from the old one.
type driftCheck struct {
	uid types.UID
	at  time.Time
}

func (r *AccessKeyReconciler) checkedDrift(ak *iamv1alpha1.AccessKey, at time.Time) {
	r.lastDriftCheck.Store(keyOf(ak.Namespace, ak.Name), driftCheck{uid: ak.UID, at: at})
}

// lastChecked is when the key was last looked up; false when this process
// has not looked it up yet.
func (r *AccessKeyReconciler) lastChecked(ak *iamv1alpha1.AccessKey) (time.Time, bool) {
	v, ok := r.lastDriftCheck.Load(keyOf(ak.Namespace, ak.Name))
	if !ok || v.(driftCheck).uid != ak.UID {
		return time.Time{}, false
	}
	return v.(driftCheck).at, true
}

// driftCheckDue reports whether the AccessKey's key should be looked up now.
// A key this process has not seen yet (after a restart) gets a random point
// within the period, so a restart does not look every key up at once.
func (r *AccessKeyReconciler) driftCheckDue(ak *iamv1alpha1.AccessKey) bool {
	last, ok := r.lastChecked(ak)
	if !ok {
		last = r.Clock.Now().Add(-time.Duration(rand.Int64N(int64(r.DriftCheckPeriod) + 1)))
		r.checkedDrift(ak, last)
	}
	return !r.Clock.Now().Before(last.Add(r.DriftCheckPeriod))
}

// nextDriftCheck is when the next lookup is due, with up to 10% jitter so
// keys minted together are not checked together.
func (r *AccessKeyReconciler) nextDriftCheck(ak *iamv1alpha1.AccessKey) time.Duration {
	jitter := time.Duration(rand.Int64N(int64(r.DriftCheckPeriod)/10 + 1))
	last, ok := r.lastChecked(ak)
	if !ok {
		return r.DriftCheckPeriod + jitter
	}
	return max(time.Second, last.Add(r.DriftCheckPeriod).Sub(r.Clock.Now())+jitter)
}
