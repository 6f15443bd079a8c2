package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// Rotation reasons: why a new key is minted. They label the rotations metric.
const (
	RotationNoKey               = "NoKey"
	RotationRestrictionsChanged = "RestrictionsChanged"
	RotationDue                 = "RotationDue"
	RotationRequested           = "RotationRequested"
	RotationKeyGone             = "KeyGone"
	RotationSecretMissing       = "SecretMissing"
	RotationSecretTampered      = "SecretTampered"
	// RotationRenewalDue: a session credential (spec.ttl) is near its expiry.
	RotationRenewalDue = "RenewalDue"
	// RotationRoleDrifted: the key's role was edited at Exoscale and cannot
	// be put back in place; the old key is revoked at once.
	RotationRoleDrifted = "RoleDrifted"
)

// renewable are the reasons a session credential's role may stay: only its
// credential needs replacing. Every other reason replaces the role, which
// ends the old role's credentials after the grace period.
var renewable = []string{RotationRenewalDue, RotationSecretMissing, RotationSecretTampered}

// keyState is what a reconcile observed, the input of needsNewKey.
type keyState struct {
	Now time.Time
	// Status is the AccessKey's recorded state.
	Status iamv1beta1.AccessKeyStatus
	// RestrictionHash is the hash of the current spec's restrictions.
	RestrictionHash string
	// RotateEvery is spec.rotation.every, zero when unset.
	RotateEvery time.Duration
	// Session: the AccessKey asks for session credentials (spec.ttl);
	// Status.NextRotationAt is then when the current one is renewed.
	Session bool
	// RotateRequest is the current value of the rotate annotation.
	RotateRequest string
	// KeyGone: the cloud answered that the current key does not exist.
	KeyGone bool
	// RoleDrifted says how the current key's role was changed at Exoscale,
	// when it could not be put back in place; empty otherwise.
	RoleDrifted string
	// SecretFound, SecretKeyID and SecretChecksumOK describe the Secret.
	SecretFound      bool
	SecretKeyID      string
	SecretChecksumOK bool
}

// decision says whether a new key is needed and why.
type decision struct {
	Needed  bool
	Reason  string
	Message string
}

// newKeyPolicy is one reason to replace a key.
type newKeyPolicy func(keyState) decision

// newKeyPolicies are checked in order; the first that asks for a key wins.
var newKeyPolicies = []newKeyPolicy{
	noKeyYet,
	keyGone,
	roleDrifted,
	restrictionsChanged,
	secretMissing,
	secretTampered,
	rotationRequested,
	rotationDue,
	renewalDue,
}

// needsNewKey decides whether the AccessKey needs a new key.
func needsNewKey(s keyState) decision {
	for _, policy := range newKeyPolicies {
		if d := policy(s); d.Needed {
			return d
		}
	}
	return decision{}
}

func noKeyYet(s keyState) decision {
	if s.Status.KeyID == "" {
		return decision{true, RotationNoKey, "no key has been minted yet"}
	}
	return decision{}
}

func keyGone(s keyState) decision {
	if s.KeyGone {
		return decision{true, RotationKeyGone, fmt.Sprintf("key %s no longer exists at Exoscale", s.Status.KeyID)}
	}
	return decision{}
}

func roleDrifted(s keyState) decision {
	if s.RoleDrifted != "" {
		return decision{true, RotationRoleDrifted, s.RoleDrifted}
	}
	return decision{}
}

func restrictionsChanged(s keyState) decision {
	if s.Status.RestrictionHash != s.RestrictionHash {
		return decision{true, RotationRestrictionsChanged, "the key's restrictions changed and keys are immutable"}
	}
	return decision{}
}

func secretMissing(s keyState) decision {
	if !s.SecretFound {
		return decision{true, RotationSecretMissing, fmt.Sprintf("Secret %s is missing", s.Status.SecretName)}
	}
	return decision{}
}

func secretTampered(s keyState) decision {
	if s.SecretKeyID != s.Status.KeyID || !s.SecretChecksumOK {
		return decision{true, RotationSecretTampered, fmt.Sprintf("Secret %s no longer holds the data exokey wrote", s.Status.SecretName)}
	}
	return decision{}
}

func rotationRequested(s keyState) decision {
	if s.RotateRequest != "" && s.RotateRequest != s.Status.RotateRequest {
		return decision{true, RotationRequested, fmt.Sprintf("rotation requested by %s=%s", iamv1beta1.RotateAnnotation, s.RotateRequest)}
	}
	return decision{}
}

func rotationDue(s keyState) decision {
	if s.RotateEvery > 0 && s.Status.CreatedAt != nil && !s.Now.Before(s.Status.CreatedAt.Add(s.RotateEvery)) {
		return decision{true, RotationDue, fmt.Sprintf("the key is older than rotation.everySeconds (%s)", s.RotateEvery)}
	}
	return decision{}
}

func renewalDue(s keyState) decision {
	if s.Session && s.Status.NextRotationAt != nil && !s.Now.Before(s.Status.NextRotationAt.Time) {
		return decision{true, RotationRenewalDue, "the session credential is near its expiry"}
	}
	return decision{}
}

// restrictionHash identifies what a key is minted with: the issuer and the
// normalised restrictions. Any change needs a new key.
func restrictionHash(ak *iamv1beta1.AccessKey) string {
	tags := make([]string, 0, len(ak.Spec.Tags))
	for _, tag := range ak.Spec.Tags {
		tags = append(tags, catalog.NormalizeTag(tag))
	}
	sortedUnique := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		return slices.Compact(s)
	}
	raw, _ := json.Marshal(struct {
		IssuerKind, IssuerName      string
		Operations, Tags, Resources []string
		Unrestricted                bool
		KeyName                     string
		// TTL is set for session credentials only, so the hash of every
		// other AccessKey is what it was before sessions existed.
		TTL string `json:",omitempty"`
	}{
		string(ak.Spec.IssuerRef.Kind), ak.Spec.IssuerRef.Name,
		sortedUnique(ak.Spec.Operations), sortedUnique(tags), sortedUnique(ak.Spec.Resources),
		ak.Spec.Access == iamv1beta1.AccessUnrestricted, ak.Spec.KeyName, ttlString(ak),
	})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}
