package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/secret"
)

// reconcileKey ensures the AccessKey's Secret holds a working key for its
// spec, recording what it did in status (written by the caller).
func (r *AccessKeyReconciler) reconcileKey(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus) (ctrl.Result, error) {
	status.SecretName = secretName(ak)
	result, err := r.ensureKey(ctx, ak, status)
	r.recordOutcome(ak, status, err)
	var refused *refusal
	if errors.As(err, &refused) {
		return result, nil // nothing to retry until the spec, the issuer or the Secret changes
	}
	if exoscale.IsTerminal(err) {
		return ctrl.Result{RequeueAfter: r.DriftCheckPeriod}, nil
	}
	return result, err
}

func (r *AccessKeyReconciler) ensureKey(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus) (ctrl.Result, error) {
	iss, err := r.resolveIssuer(ctx, ak)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := secret.Validate(ak.Spec.Secret, secretValues(ak, iss)); err != nil {
		return ctrl.Result{}, refuse(ReasonInvalidSpec, "%v", err)
	}
	keys, err := r.Issuers.Keys(ctx, iss)
	if credErr, ok := asCredentialsError(err); ok {
		return ctrl.Result{}, refuse(ReasonIssuerNotReady, "%s %q: %s", iss.Kind, iss.Key.Name, credErr.Message)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	current, err := r.getSecret(ctx, ak)
	if err != nil {
		return ctrl.Result{}, err
	}
	if conflictsWith(current, ak) {
		return ctrl.Result{}, refuse(ReasonSecretConflict,
			"Secret %s exists and is not controlled by this AccessKey: choose another spec.secret.name or remove the Secret", secretName(ak))
	}
	pending, err := unsettledPending(ak)
	if err != nil {
		return ctrl.Result{}, err
	}
	if pending != nil {
		if err := r.recoverPending(ctx, ak, status, keys, current, pending); err != nil {
			return ctrl.Result{}, err
		}
	}

	state, err := r.observe(ctx, ak, status, keys, current)
	if err != nil {
		return ctrl.Result{}, err
	}
	if d := needsNewKey(state); d.Needed {
		// A Secret seen missing or changed in the cache is confirmed before
		// a key is replaced for it.
		if d.Reason == RotationSecretMissing || d.Reason == RotationSecretTampered {
			fresh := &corev1.Secret{}
			if err := r.APIReader.Get(ctx, keyOf(ak.Namespace, secretName(ak)), fresh); err == nil {
				current = fresh
				state.SecretFound, state.SecretKeyID, state.SecretChecksumOK = true, fresh.Annotations[iamv1alpha1.KeyIDAnnotation], checksumOK(fresh)
				d = needsNewKey(state)
			}
		}
		if d.Needed {
			if err := r.replace(ctx, ak, status, iss, keys, current, d, state.KeyGone); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if err := r.revokeRetiring(ctx, ak, status, keys); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.nextWake(ak, status)}, nil
}

// observe gathers the inputs of the new-key decision; it looks the key up
// at Exoscale once per drift-check period.
func (r *AccessKeyReconciler) observe(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus,
	keys exoscale.Keys, current *corev1.Secret) (keyState, error) {
	state := keyState{
		Now:             r.Clock.Now(),
		Status:          *status,
		RestrictionHash: restrictionHash(ak),
		RotateRequest:   ak.Annotations[iamv1alpha1.RotateAnnotation],
	}
	if ak.Spec.Rotation != nil && ak.Spec.Rotation.Every != nil {
		state.RotateEvery = ak.Spec.Rotation.Every.Duration
	}
	if current != nil {
		state.SecretFound = true
		state.SecretKeyID = current.Annotations[iamv1alpha1.KeyIDAnnotation]
		state.SecretChecksumOK = checksumOK(current)
	}
	if status.KeyID != "" && r.driftCheckDue(ak) {
		_, err := keys.Get(ctx, status.KeyID)
		switch {
		case errors.Is(err, exoscale.ErrNotFound):
			state.KeyGone = true
		case err != nil:
			return state, fmt.Errorf("look up key %s: %w", status.KeyID, err)
		}
		r.lastDriftCheck.Store(ak.UID, r.Clock.Now())
	}
	return state, nil
}

func checksumOK(s *corev1.Secret) bool {
	return s.Annotations[iamv1alpha1.ChecksumAnnotation] == secret.Checksum(s.Data)
}

// recoverPending finishes a create a previous pass started: a Secret that
// names the pending key means it was published, so it is adopted; otherwise
// its secret is lost and whatever was created under that name is revoked.
func (r *AccessKeyReconciler) recoverPending(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus,
	keys exoscale.Keys, current *corev1.Secret, pending *pendingKey) error {
	log := logf.FromContext(ctx).WithValues("keyName", pending.KeyName)
	if current != nil && current.Annotations[iamv1alpha1.KeyNameAnnotation] == pending.KeyName {
		adopted := exoscale.Key{
			ID: current.Annotations[iamv1alpha1.KeyIDAnnotation], Name: pending.KeyName, RoleID: current.Annotations[RoleIDAnnotation],
		}
		r.rollTargets(ctx, ak, current.Annotations[iamv1alpha1.ChecksumAnnotation])
		r.promote(ak, status, adopted, pending.StartedAt, false)
		status.RestrictionHash, status.RotateRequest = pending.RestrictionHash, pending.RotateRequest
		log.Info("adopted a key published before an interruption", "keyID", adopted.ID)
		r.event(ak, corev1.EventTypeNormal, EventKeyAdopted, "Adopt", "adopted key %s, published before an interruption", adopted.ID)
		return nil
	}
	found, err := keys.FindByName(ctx, pending.KeyName)
	if err != nil {
		return fmt.Errorf("look up pending key %s: %w", pending.KeyName, err)
	}
	for _, key := range found {
		if err := keys.Revoke(ctx, key); err != nil {
			return fmt.Errorf("revoke unpublished key %s: %w", pending.KeyName, err)
		}
		log.Info("revoked a key whose create was interrupted before it was published", "keyID", key.ID)
		r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Revoke", "revoked key %s: its create was interrupted before it was published", key.ID)
	}
	return r.clearPending(ctx, ak)
}

// replace mints a new key, publishes it and retires the old one:
// intent first (the pending record, with the finalizer), then create, then
// the Secret, then status.
func (r *AccessKeyReconciler) replace(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus,
	iss *issuer, keys exoscale.Keys, current *corev1.Secret, d decision, oldKeyGone bool) error {
	now := r.Clock.Now()
	name := newKeyName(iss.Spec.KeyNamePrefix, ak)
	intent := pendingKey{KeyName: name, StartedAt: now.UTC().Truncate(time.Second),
		RestrictionHash: restrictionHash(ak), RotateRequest: ak.Annotations[iamv1alpha1.RotateAnnotation]}
	if err := r.recordPending(ctx, ak, intent); err != nil {
		return fmt.Errorf("record the pending key: %w", err)
	}

	cred, err := keys.Create(ctx, keySpec(ak, name))
	if err != nil {
		if exoscale.IsTerminal(err) {
			// Refused: nothing was created. A record left behind costs one
			// lookup on the next pass, so failing to clear it is harmless.
			_ = r.clearPending(ctx, ak)
		}
		return fmt.Errorf("create key %s: %w", name, err)
	}
	log := logf.FromContext(ctx).WithValues("keyID", cred.ID, "keyName", name, "reason", d.Reason)
	log.Info("created key")
	r.event(ak, corev1.EventTypeNormal, EventKeyCreated, "Create", "created key %s: %s", cred.ID, d.Message)

	checksum, err := r.publish(ctx, ak, iss, cred, current)
	if err != nil {
		return err // the pending record stays: the next pass revokes the unpublished key
	}
	log.Info("published key", "secret", secretName(ak), "checksum", checksum[:12])
	r.event(ak, corev1.EventTypeNormal, EventKeyPublished, "Publish", "published key %s in Secret %s", cred.ID, secretName(ak))

	r.rollTargets(ctx, ak, checksum)
	r.promote(ak, status, cred.Key, now, oldKeyGone)
	r.lastDriftCheck.Store(ak.UID, now) // it exists: it was just made
	r.Metrics.rotated(d.Reason)
	status.RestrictionHash = restrictionHash(ak)
	status.RotateRequest = ak.Annotations[iamv1alpha1.RotateAnnotation]
	return nil
}

// promote makes key the current key; the old one retires after the grace
// period, unless it is already gone.
func (r *AccessKeyReconciler) promote(ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus, key exoscale.Key, createdAt time.Time, oldKeyGone bool) {
	if status.KeyID != "" && status.KeyID != key.ID && !oldKeyGone {
		revokeAt := metav1.NewTime(r.Clock.Now().Add(gracePeriod(ak)))
		status.Retiring = append(status.Retiring, iamv1alpha1.RetiringKey{
			KeyID: status.KeyID, KeyName: status.KeyName, RoleID: status.RoleID, RevokeAt: revokeAt,
		})
		r.event(ak, corev1.EventTypeNormal, EventKeyRetiring, "Retire", "key %s stays valid until %s, then is revoked",
			status.KeyID, revokeAt.UTC().Format(time.RFC3339))
	}
	created := metav1.NewTime(createdAt)
	status.KeyID, status.KeyName, status.RoleID, status.CreatedAt = key.ID, key.Name, key.RoleID, &created
	status.NextRotationAt = nil
	if ak.Spec.Rotation != nil && ak.Spec.Rotation.Every != nil {
		next := metav1.NewTime(createdAt.Add(ak.Spec.Rotation.Every.Duration))
		status.NextRotationAt = &next
	}
}

func gracePeriod(ak *iamv1alpha1.AccessKey) time.Duration {
	if ak.Spec.Rotation != nil && ak.Spec.Rotation.GracePeriod != nil {
		return ak.Spec.Rotation.GracePeriod.Duration
	}
	return 10 * time.Minute
}

// revokeRetiring revokes the retiring keys whose time has come.
func (r *AccessKeyReconciler) revokeRetiring(ctx context.Context, ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus, keys exoscale.Keys) error {
	now := r.Clock.Now()
	var kept []iamv1alpha1.RetiringKey
	var errs []error
	for _, old := range status.Retiring {
		if now.Before(old.RevokeAt.Time) {
			kept = append(kept, old)
			continue
		}
		if err := keys.Revoke(ctx, exoscale.Key{ID: old.KeyID, Name: old.KeyName, RoleID: old.RoleID}); err != nil {
			kept = append(kept, old)
			errs = append(errs, fmt.Errorf("revoke retired key %s: %w", old.KeyID, err))
			continue
		}
		logf.FromContext(ctx).Info("revoked retired key", "keyID", old.KeyID)
		r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Revoke", "revoked key %s after its grace period", old.KeyID)
	}
	status.Retiring = kept
	return errors.Join(errs...)
}

// nextWake is the earliest of the next revocation, the next rotation and
// the next drift check.
func (r *AccessKeyReconciler) nextWake(ak *iamv1alpha1.AccessKey, status *iamv1alpha1.AccessKeyStatus) time.Duration {
	now := r.Clock.Now()
	wake := r.nextDriftCheck(ak)
	consider := func(at time.Time) {
		if d := at.Sub(now); d < wake {
			wake = max(d, time.Second)
		}
	}
	for _, old := range status.Retiring {
		consider(old.RevokeAt.Time)
	}
	if status.NextRotationAt != nil {
		consider(status.NextRotationAt.Time)
	}
	return wake
}

// keySpec is what the AccessKey asks Exoscale for.
func keySpec(ak *iamv1alpha1.AccessKey, name string) exoscale.KeySpec {
	return exoscale.KeySpec{
		Name: name, Operations: ak.Spec.Operations, Tags: ak.Spec.Tags, Resources: ak.Spec.Resources,
		Unrestricted: ak.Spec.Unrestricted,
		Labels:       map[string]string{"exokey.io/namespace": ak.Namespace, "exokey.io/name": ak.Name},
	}
}

// maxKeyNameBase keeps names within the IAM role name limit (191) with the suffix.
const maxKeyNameBase = 180

// newKeyName is <prefix>-<namespace>-<name>-<random>, or <keyName>-<random>:
// unique, so the pending, current and retiring keys are told apart by name.
func newKeyName(prefix string, ak *iamv1alpha1.AccessKey) string {
	base := ak.Spec.KeyName
	if base == "" {
		if prefix == "" {
			prefix = "k8s"
		}
		base = strings.Join([]string{prefix, ak.Namespace, ak.Name}, "-")
	}
	if len(base) > maxKeyNameBase {
		base = base[:maxKeyNameBase]
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	return base + "-" + hex.EncodeToString(suffix)
}
