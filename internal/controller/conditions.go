package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types.
const (
	// ConditionReady: the AccessKey's Secret holds a working key for the
	// current spec (or, on an issuer, its credentials may mint keys).
	ConditionReady = "Ready"
	// ConditionSynced: the last reconcile finished without error.
	ConditionSynced = "Synced"
)

// Reasons of the conditions. They are the vocabulary of events too.
const (
	ReasonKeyPublished     = "KeyPublished"
	ReasonIssuerNotFound   = "IssuerNotFound"
	ReasonIssuerNotReady   = "IssuerNotReady"
	ReasonNotPermitted     = "NotPermitted"
	ReasonUnknownOperation = "UnknownOperation"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonSecretConflict   = "SecretConflict"
	ReasonAPIError         = "APIError"
	ReasonReconcileError   = "ReconcileError"
	ReasonRejected         = "RejectedByAPI"
	ReasonReconciled       = "Reconciled"
	ReasonRevokeFailed     = "RevokeFailed"
	// ReasonSecretRejected: the API server refused the rendered Secret;
	// nothing more is minted for this generation.
	ReasonSecretRejected = "SecretRejected"
	// ReasonKeyLimitReached: a new key waits until a retiring one is revoked.
	ReasonKeyLimitReached = "KeyLimitReached"

	ReasonCredentialsMissing  = "CredentialsMissing"
	ReasonCredentialsInvalid  = "CredentialsInvalid"
	ReasonEndpointUnreachable = "EndpointUnreachable"
	ReasonInsecureEndpoint    = "InsecureEndpoint"
	ReasonIssuerReady         = "Ready"
	// ReasonInUse: a deleted issuer waits for the AccessKeys that use it.
	ReasonInUse = "InUse"
	// ReasonIssuerDeleting: an AccessKey's issuer is being deleted; its
	// keys are revoked on time, and no new one is minted.
	ReasonIssuerDeleting = "IssuerDeleting"
)

// Event reasons for what happens to keys.
const (
	EventKeyCreated   = "KeyCreated"
	EventKeyPublished = "KeyPublished"
	EventKeyRetiring  = "KeyRetiring"
	EventKeyRevoked   = "KeyRevoked"
	EventKeyAdopted   = "KeyAdopted"
	EventKeyRenewed   = "KeyRenewed"
	EventKeyOrphaned  = "KeyOrphaned"
	EventRefused      = "Refused"
	// EventKeyBeyondCeiling: the issuer no longer allows the current key.
	EventKeyBeyondCeiling = "KeyBeyondCeiling"
	// EventRoleDrifted: a key's role was edited at Exoscale; its policy
	// was put back, or the key replaced.
	EventRoleDrifted = "RoleDrifted"
	// EventOrphanFound and EventOrphanRevoked: the sweep found a key exokey
	// minted whose AccessKey is gone, and revoked it.
	EventOrphanFound   = "OrphanedKeyFound"
	EventOrphanRevoked = "OrphanedKeyRevoked"
	// EventKeysLeftLive: a deleted AccessKey was released after
	// RevokeTimeout with keys that could not be revoked.
	EventKeysLeftLive = "KeysLeftLive"
)

// setCondition sets a condition; at is the transition time if its status
// changes (the reconciler's clock, which refusal backoffs are measured by).
func setCondition(conditions *[]metav1.Condition, at time.Time, generation int64, conditionType string, status metav1.ConditionStatus,
	reason, message string) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type: conditionType, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(at.Truncate(time.Second)),
	})
}
