package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

// Labels exokey puts on the IAM v3 roles it mints: who the key is for, and
// which cluster's exokey minted it, so the orphan sweep can tell its own
// keys whose AccessKey is gone from everyone else's.
const (
	LabelNamespace = "exokey.io/namespace"
	LabelName      = "exokey.io/name"
	LabelUID       = "exokey.io/uid"
	LabelCluster   = "exokey.io/cluster"
	// LabelOrphaned marks the role of a key kept by deletionPolicy Orphan.
	LabelOrphaned = "exokey.io/orphaned"
)

// identity is what status records of the issuer that mints a key.
func (i *issuer) identity() iamv1beta1.MintingIssuer {
	api := i.Spec.API
	if api == "" {
		api = iamv1beta1.IssuerAPIIAMv3
	}
	return iamv1beta1.MintingIssuer{Kind: i.Kind, Name: i.Key.Name, UID: i.Object.GetUID(), API: api}
}

// keysOf returns the backend that revokes a key: that of the issuer that
// minted it, even while that issuer is being deleted or after its
// credentials Secret is gone (from what this process kept). Keys are
// revoked through that issuer only, and only while it is the same object: a
// "not found" from another organisation is not a revocation. Keys recorded
// before issuers were (older statuses) go through the AccessKey's issuer.
func (r *AccessKeyReconciler) keysOf(ctx context.Context, ak *iamv1beta1.AccessKey, minted *iamv1beta1.MintingIssuer) (*issuer, exoscale.Keys, error) {
	ref := ak.Spec.IssuerRef
	if minted != nil {
		ref = iamv1beta1.IssuerReference{Kind: minted.Kind, Name: minted.Name}
	}
	iss, err := getIssuer(ctx, r.Client, ref, ak.Namespace)
	if isNotFound(err) {
		return nil, nil, fmt.Errorf("%s %q, which minted the key, is gone: its keys cannot be revoked", kindOf(ref), ref.Name)
	}
	if err != nil {
		return nil, nil, err
	}
	if minted != nil && minted.UID != "" && iss.Object.GetUID() != minted.UID {
		return nil, nil, fmt.Errorf("%s %q was deleted and created again: the keys its predecessor minted cannot be revoked through it",
			kindOf(ref), ref.Name)
	}
	keys, err := r.Issuers.revoker(ctx, iss)
	if credErr, ok := asCredentialsError(err); ok {
		return nil, nil, fmt.Errorf("%s %q: %s", iss.Kind, ref.Name, credErr.Message)
	}
	return iss, keys, err
}

// ceilingHash identifies what an issuer allows an AccessKey: a key checked
// against one ceiling is still within it while the hash is the same.
func ceilingHash(iss *issuer) string {
	raw, _ := json.Marshal(iss.Spec.Allowed)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// issuerLimits are an issuer's limits with their defaults.
type issuerLimits struct {
	maxGrace, minRotation, minSessionTTL time.Duration
	maxKeys                              int
	// beyondCeilingGrace is how long a key the issuer no longer allows
	// stays valid: the issuer's choice, 0 by default.
	beyondCeilingGrace time.Duration
}

func limitsOf(iss *issuer) issuerLimits {
	l := issuerLimits{maxGrace: time.Hour, minRotation: time.Hour, minSessionTTL: 15 * time.Minute, maxKeys: 3}
	if s := iss.Spec.Limits.MaxGracePeriodSeconds; s != nil && *s > 0 {
		l.maxGrace = iamv1beta1.Seconds(*s)
	}
	if s := iss.Spec.Limits.MinRotationPeriodSeconds; s != nil && *s > 0 {
		l.minRotation = iamv1beta1.Seconds(*s)
	}
	if s := iss.Spec.Limits.MinSessionTTLSeconds; s != nil && *s > 0 {
		l.minSessionTTL = iamv1beta1.Seconds(*s)
	}
	if n := iss.Spec.Limits.MaxKeysPerAccessKey; n >= 2 {
		l.maxKeys = int(n)
	}
	if s := iss.Spec.Limits.BeyondCeilingGraceSeconds; s != nil && *s > 0 {
		l.beyondCeilingGrace = iamv1beta1.Seconds(*s)
	}
	return l
}
