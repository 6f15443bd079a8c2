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

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/secret"
)

// reconcileKey ensures the AccessKey's Secret holds a working key for its
// spec, recording what it did in status (written by the caller).
func (r *AccessKeyReconciler) reconcileKey(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus) (ctrl.Result, error) {
	status.SecretName = secretName(ak)
	result, err := r.ensureKey(ctx, ak, status)
	if after, throttled := exoscale.RetryAfter(err); throttled {
		// The issuer's rate is spent: come back when it is not, without
		// holding the worker or reporting a failure.
		err = &deferral{After: jittered(after)}
	}
	r.recordOutcome(ak, status, err)
	var refused *refusal
	var deferred *deferral
	switch {
	case errors.As(err, &deferred):
		return ctrl.Result{RequeueAfter: min(deferred.After, r.nextWake(status))}, nil
	case errors.As(err, &refused), exoscale.IsTerminal(err):
		// What refused it is fixed elsewhere (a Secret, an issuer, a
		// namespace's labels): look again on a capped backoff, besides the
		// watches, and revoke retiring keys on time meanwhile.
		return ctrl.Result{RequeueAfter: min(r.refusalRetry(status), r.nextWake(status))}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	if result.RequeueAfter > 0 {
		return result, nil
	}
	return ctrl.Result{RequeueAfter: r.nextWake(status)}, nil
}

// ensureKey looks after the keys already minted first (an interrupted
// create, retiring keys that are due), whatever the spec or the issuer say
// now, then makes sure the current key is the one the spec asks for.
func (r *AccessKeyReconciler) ensureKey(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus) (ctrl.Result, error) {
	iss, resolveErr := r.resolveIssuer(ctx, ak)
	current, err := r.getSecret(ctx, ak)
	if err != nil {
		return ctrl.Result{}, err
	}
	pendingErr := r.recoverPending(ctx, ak, status, current)
	var settling *deferral
	if pendingErr != nil && !errors.As(pendingErr, &settling) {
		return ctrl.Result{}, pendingErr
	}
	retireErr := r.revokeRetiring(ctx, ak, status)
	if settling != nil {
		// Retiring keys are revoked on time meanwhile; nothing is minted.
		return ctrl.Result{}, settling
	}
	if resolveErr != nil {
		var refused *refusal
		if errors.As(resolveErr, &refused) && refused.BeyondCeiling {
			r.retireBeyondCeiling(ak, status, iss, refused)
			// A key due at once (beyondCeilingGrace 0) goes in this pass; one
			// that fails stays retiring, and is tried again on its record.
			_ = r.revokeRetiring(ctx, ak, status)
		}
		return ctrl.Result{}, resolveErr
	}
	result, err := r.ensureCurrent(ctx, ak, status, iss, current)
	if err != nil {
		return result, err
	}
	return result, retireErr
}

// ensureCurrent makes sure the current key is the one the spec asks for,
// from an issuer that may serve it.
func (r *AccessKeyReconciler) ensureCurrent(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	iss *issuer, current *corev1.Secret) (ctrl.Result, error) {
	// The name the next key would have: the Secret is checked with it.
	name := newKeyName(iss.Spec.KeyNamePrefix, ak, r.KeyNames)
	if err := secret.Validate(ak.Spec.Secret, secretValues(ak, iss), name); err != nil {
		return ctrl.Result{}, refuse(ReasonInvalidSpec, "%v", err)
	}
	keys, err := r.Issuers.Keys(ctx, iss)
	if credErr, ok := asCredentialsError(err); ok {
		return ctrl.Result{}, refuse(ReasonIssuerNotReady, "%s %q: %s", iss.Kind, iss.Key.Name, credErr.Message)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if conflictsWith(current, ak) {
		return ctrl.Result{}, refuse(ReasonSecretConflict,
			"Secret %s exists and is not controlled by this AccessKey: choose another spec.secret.name or remove the Secret", secretName(ak))
	}
	if rejected := findCondition(status.Conditions, ConditionReady); rejected != nil && rejected.Reason == ReasonSecretRejected &&
		rejected.ObservedGeneration == ak.Generation {
		// The API server refused this generation's Secret: minting again
		// would only be refused again. An edit of the spec retries.
		return ctrl.Result{}, refuse(ReasonSecretRejected, "%s", rejected.Message)
	}

	limits := limitsOf(iss)
	state, err := r.observe(ctx, ak, status, iss, keys, current, limits)
	if err != nil {
		return ctrl.Result{}, err
	}
	d := needsNewKey(state)
	if d.Needed && (d.Reason == RotationSecretMissing || d.Reason == RotationSecretTampered) {
		// A Secret seen missing or changed in the cache is confirmed at the
		// API server before a key is replaced for it. A failed read is not
		// a confirmation: the pass ends and is retried.
		fresh, err := r.readSecret(ctx, keyOf(ak.Namespace, secretName(ak)))
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("confirm the Secret before replacing its key: %w", err)
		}
		current = fresh
		state.observeSecret(fresh)
		d = needsNewKey(state)
	}
	if !d.Needed {
		return ctrl.Result{}, nil
	}
	if live := liveKeys(status, state.KeyGone); live >= limits.maxKeys {
		next := r.nextRevocation(status)
		return ctrl.Result{}, &deferral{Reason: ReasonKeyLimitReached, After: next, Message: fmt.Sprintf(
			"%s, but %d keys are live, the most %s %q allows: the new key waits for a retiring key's revocation", d.Message, live, iss.Kind, iss.Key.Name)}
	}
	if holdsKeys(ak) { // a first key took its mint before the pass began
		if wait := r.Issuers.admit(iss, ak.Namespace, r.Clock.Now()); wait > 0 {
			return ctrl.Result{}, &deferral{After: wait} // the namespace's fair share of the issuer is spent for now
		}
	}
	if canRenew(ak, status, iss, d) {
		// A renewal writes no record first, which would fail on a stale
		// copy: the AccessKey is read again instead, so a cache that has
		// not seen the last renewal yet cannot cause another.
		if stale, err := r.staleCopy(ctx, ak); err != nil || stale {
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		return ctrl.Result{}, r.renew(ctx, ak, status, iss, keys, current, d)
	}
	old := retireAfterGrace
	switch {
	case state.KeyGone:
		old = retireNothing
	case d.Reason == RotationRoleDrifted:
		old = retireNow // it may hold more than its AccessKey grants
	}
	return ctrl.Result{}, r.replace(ctx, ak, status, iss, keys, current, name, d, old, limits)
}

// replace mints a new key, publishes it and retires the old one:
// intent first (the finalizer, then the pending record in status), then
// create, then the Secret, then status.
func (r *AccessKeyReconciler) replace(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	iss *issuer, keys exoscale.Keys, current *corev1.Secret, name string, d decision, old retirement, limits issuerLimits) error {
	now := r.Clock.Now()
	pending := newPending(ak, iss, name, now)
	if err := r.recordPending(ctx, ak, status, pending); err != nil {
		return fmt.Errorf("record the pending key: %w", err)
	}

	cred, expiresAt, err := r.create(ctx, ak, keys, name)
	if err != nil {
		if exoscale.NothingCreated(err) {
			status.Pending = iamv1beta1.PendingKey{} // refused or throttled before anything was made
		}
		// Otherwise the create may have happened: the record stays, and the
		// next pass looks the name up and revokes what it finds.
		return fmt.Errorf("create key %s: %w", name, err)
	}
	r.settled.end(ak.UID, name, r.Clock.Now(), r.PendingSettle)
	log := logf.FromContext(ctx).WithValues("keyID", cred.ID, "keyName", name, "reason", d.Reason)
	log.Info("created key")

	checksum, err := r.publish(ctx, ak, iss, cred, current)
	if err != nil {
		// The secret exists nowhere else: a key that cannot be published is
		// revoked now (or, if that fails, through the record next pass).
		if revokeErr := keys.Revoke(ctx, cred.Key); revokeErr == nil {
			status.Pending = iamv1beta1.PendingKey{}
			r.event(ak, corev1.EventTypeNormal, EventKeyRevoked, "Revoke", "revoked key %s: it could not be published", cred.ID)
		}
		return err
	}
	log.Info("published key", "secret", secretName(ak), "checksum", checksum[:12])
	// One event for the create and the publish: each is a write to the API
	// server, and in a flood they queue in the manager. A key that could
	// not be published has its KeyRevoked event instead.
	r.event(ak, corev1.EventTypeNormal, EventKeyPublished, "Publish", "created key %s and published it in Secret %s: %s", cred.ID, secretName(ak), d.Message)

	consumers := r.rollTargets(ctx, ak, checksum)
	awaitConsumers(ak, status, r.promote(ak, status, cred.Key, pending.Issuer, now, old, limits), consumers, now)
	if !expiresAt.IsZero() {
		sessionTimes(ak, status, now, expiresAt)
	}
	r.Metrics.rotated(d.Reason)
	status.Pending = iamv1beta1.PendingKey{}
	status.RestrictionHash, status.RotateRequest, status.CeilingHash = pending.RestrictionHash, pending.RotateRequest, pending.CeilingHash
	return nil
}

// create mints the AccessKey's key: a permanent key, or a session role and
// its first credential, with its expiry.
func (r *AccessKeyReconciler) create(ctx context.Context, ak *iamv1beta1.AccessKey, keys exoscale.Keys, name string) (exoscale.Credential, time.Time, error) {
	if ttlOf(ak) > 0 {
		session, err := exoscale.CreateSession(ctx, keys, r.KeySpecOf(ak, name), ttlOf(ak))
		return session.Credential, session.ExpiresAt, err
	}
	cred, err := keys.Create(ctx, r.KeySpecOf(ak, name))
	return cred, time.Time{}, err
}

// retirement is what becomes of the key a new one replaces.
type retirement int

const (
	// retireAfterGrace: it stays valid for the AccessKey's grace period.
	retireAfterGrace retirement = iota
	// retireNow: its rights drifted, so it is revoked at once.
	retireNow
	// retireNothing: it is already gone.
	retireNothing
)

// promote makes key the current key; the old one retires as old says. It
// returns the index of the key it retired in status.Retiring, or -1.
func (r *AccessKeyReconciler) promote(ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus, key exoscale.Key,
	minted iamv1beta1.MintingIssuer, createdAt time.Time, old retirement, limits issuerLimits) int {
	retired := -1
	if status.KeyID != "" && status.KeyID != key.ID && old != retireNothing {
		grace := graceFor(ak, limits)
		if old == retireNow {
			grace = 0
		}
		revokeAt := metav1.NewTime(r.Clock.Now().Add(grace))
		status.Retiring = append(status.Retiring, iamv1beta1.RetiringKey{
			KeyID: status.KeyID, KeyName: status.KeyName, RoleID: status.RoleID, RevokeAt: &revokeAt, Issuer: status.Issuer,
		})
		r.event(ak, corev1.EventTypeNormal, EventKeyRetiring, "Retire", "key %s stays valid until %s at the latest, then is revoked",
			status.KeyID, revokeAt.UTC().Format(time.RFC3339))
		if old == retireAfterGrace {
			retired = len(status.Retiring) - 1
		}
	}
	created := metav1.NewTime(createdAt)
	status.KeyID, status.KeyName, status.RoleID, status.CreatedAt = key.ID, key.Name, key.RoleID, &created
	status.Issuer = minted
	status.NextRotationAt, status.ExpiresAt = nil, nil
	if every := rotationEvery(ak, limits); every > 0 {
		next := metav1.NewTime(createdAt.Add(every))
		status.NextRotationAt = &next
	}
	return retired
}

// specGrace is the grace period the AccessKey asks for.
func specGrace(ak *iamv1beta1.AccessKey) time.Duration {
	if ak.Spec.Rotation != nil && ak.Spec.Rotation.GracePeriodSeconds > 0 {
		return iamv1beta1.Seconds(ak.Spec.Rotation.GracePeriodSeconds)
	}
	return 10 * time.Minute
}

// graceFor is the AccessKey's grace period, capped by its issuer.
func graceFor(ak *iamv1beta1.AccessKey, limits issuerLimits) time.Duration {
	return min(specGrace(ak), limits.maxGrace)
}

// rotationEvery is spec.rotation.every, no shorter than its issuer allows;
// zero when the AccessKey does not rotate on a schedule.
func rotationEvery(ak *iamv1beta1.AccessKey, limits issuerLimits) time.Duration {
	if ak.Spec.Rotation == nil || ak.Spec.Rotation.EverySeconds == 0 {
		return 0
	}
	return max(iamv1beta1.Seconds(ak.Spec.Rotation.EverySeconds), limits.minRotation)
}

// keySpec is what the AccessKey asks Exoscale for. The labels (IAMv3 roles
// only) tie the key to this AccessKey and this cluster.
func (r *AccessKeyReconciler) KeySpecOf(ak *iamv1beta1.AccessKey, name string) exoscale.KeySpec {
	spec := KeySpecOf(ak, name)
	spec.Labels = map[string]string{LabelNamespace: ak.Namespace, LabelName: ak.Name, LabelUID: string(ak.UID)}
	if r.ClusterID != "" {
		spec.Labels[LabelCluster] = r.ClusterID
	}
	return spec
}

// KeySpecOf is the restrictions the AccessKey asks for, under the key name.
func KeySpecOf(ak *iamv1beta1.AccessKey, name string) exoscale.KeySpec {
	return exoscale.KeySpec{
		Name: name, Operations: ak.Spec.Operations, Tags: ak.Spec.Tags, Resources: ak.Spec.Resources,
		Unrestricted: ak.Spec.Access == iamv1beta1.AccessUnrestricted,
	}
}

// maxKeyNameBase keeps names within the IAM role name limit (191) with the
// longest suffix (keyNameSuffix).
const maxKeyNameBase = 191 - keyNameSuffix

// newKeyName is <prefix>-<namespace>-<name>-<random>, or <keyName>-<random>:
// unique, so the pending, current and retiring keys are told apart by name.
func newKeyName(prefix string, ak *iamv1beta1.AccessKey, names *KeyNames) string {
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
	if names != nil {
		return names.name(base, ak.UID) // proves it is this AccessKey's
	}
	// 48 random bits: names are how the records in status find their keys,
	// and a tenant chooses the rest of the name (spec.keyName).
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	return base + "-" + hex.EncodeToString(suffix)
}
