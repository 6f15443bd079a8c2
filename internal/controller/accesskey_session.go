package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// Session credentials (spec.ttl): the AccessKey's role is created once,
// assumable by its issuer's key alone, and the Secret holds a credential
// from assume-iam-role that expires by itself. It is renewed on the same
// role before it expires; the old one is not revoked, it expires. A change
// of the restrictions, a rotation request or a lost role replaces the role
// as a permanent key is replaced: the old role is deleted after the grace
// period, which ends its credentials.

// ttlOf is spec.ttl, zero for a permanent key.
func ttlOf(ak *iamv1beta1.AccessKey) time.Duration {
	return iamv1beta1.Seconds(ak.Spec.TTLSeconds)
}

func ttlString(ak *iamv1beta1.AccessKey) string {
	if ak.Spec.TTLSeconds == 0 {
		return ""
	}
	return ttlOf(ak).String()
}

// renewBefore is how long before its expiry a session credential is
// renewed: spec.rotation.renewBefore, by default a third of the ttl.
func renewBefore(ak *iamv1beta1.AccessKey) time.Duration {
	if r := ak.Spec.Rotation; r != nil && r.RenewBeforeSeconds > 0 && iamv1beta1.Seconds(r.RenewBeforeSeconds) < ttlOf(ak) {
		return iamv1beta1.Seconds(r.RenewBeforeSeconds)
	}
	return ttlOf(ak) / 3
}

// sessionTimes sets when the current session credential expires, as
// Exoscale said, and when it is renewed: by this manager's clock, counted
// from now (the credential was issued before now), so a clock that is off
// from Exoscale's cannot delay a renewal past the expiry.
func sessionTimes(ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus, now, expiresAt time.Time) {
	expires := metav1.NewTime(expiresAt)
	renew := metav1.NewTime(now.Add(ttlOf(ak) - renewBefore(ak)))
	status.ExpiresAt, status.NextRotationAt = &expires, &renew
}

// canRenew reports whether the decision d can be met by a new credential
// of the current role.
func canRenew(ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus, iss *issuer, d decision) bool {
	return ttlOf(ak) > 0 && status.RoleID != "" && !status.Issuer.IsZero() && status.Issuer == iss.identity() &&
		slices.Contains(renewable, d.Reason)
}

// renew publishes a fresh session credential of the current role. Nothing
// needs an intent record: a credential lost to a crash expires by itself.
func (r *AccessKeyReconciler) renew(ctx context.Context, ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus,
	iss *issuer, keys exoscale.Keys, current *corev1.Secret, d decision) error {
	session, err := keys.Assume(ctx, status.RoleID, ttlOf(ak))
	if err != nil {
		return fmt.Errorf("assume role %s: %w", status.RoleID, err)
	}
	session.Name = status.KeyName
	checksum, err := r.publish(ctx, ak, iss, session.Credential, current)
	if err != nil {
		return err // the credential expires by itself
	}
	logf.FromContext(ctx).Info("renewed session credential", "keyID", session.ID, "roleID", status.RoleID,
		"expiresAt", session.ExpiresAt, "reason", d.Reason)
	r.event(ak, corev1.EventTypeNormal, EventKeyRenewed, "Renew", "published session credential %s of role %s, valid until %s: %s",
		session.ID, status.RoleID, session.ExpiresAt.UTC().Format(time.RFC3339), d.Message)
	r.rollTargets(ctx, ak, checksum)
	now := r.Clock.Now()
	created := metav1.NewTime(now)
	status.KeyID, status.CreatedAt = session.ID, &created
	sessionTimes(ak, status, now, session.ExpiresAt)
	r.Metrics.rotated(d.Reason)
	return nil
}

// staleCopy reports whether the API server holds a newer AccessKey than ak.
func (r *AccessKeyReconciler) staleCopy(ctx context.Context, ak *iamv1beta1.AccessKey) (bool, error) {
	fresh := &iamv1beta1.AccessKey{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ak), fresh); err != nil {
		return false, fmt.Errorf("read the AccessKey before renewing: %w", err)
	}
	return fresh.ResourceVersion != ak.ResourceVersion, nil
}
