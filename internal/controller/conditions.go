package controller

import (
	"slices"
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
	// ConditionReconciling and ConditionStalled follow kstatus's
	// abnormal-true convention, which Helm 4, Flux, kpt and Argo CD read:
	// present only while True. Reconciling: work is under way, or waits on
	// something that heals by itself. Stalled: a refusal only an edit fixes,
	// with Ready's reason and message.
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Reasons of the conditions. They are the vocabulary of events too.
const (
	ReasonKeyPublished   = "KeyPublished"
	ReasonIssuerNotFound = "IssuerNotFound"
	ReasonIssuerNotReady = "IssuerNotReady"
	ReasonNotPermitted   = "NotPermitted"
	// ReasonIssuerCannotGrant: the issuer's own key does not hold what is
	// asked (its role, or the organisation policy, denies it). A change at
	// Exoscale heals it at the issuer's next check: not Stalled.
	ReasonIssuerCannotGrant = "IssuerCannotGrant"
	ReasonUnknownOperation  = "UnknownOperation"
	ReasonInvalidSpec       = "InvalidSpec"
	ReasonSecretConflict    = "SecretConflict"
	ReasonAPIError          = "APIError"
	ReasonReconcileError    = "ReconcileError"
	ReasonRejected          = "RejectedByAPI"
	ReasonReconciled        = "Reconciled"
	// ReasonMinting: a key for this generation is being minted or published.
	ReasonMinting      = "Minting"
	ReasonRevokeFailed = "RevokeFailed"
	// ReasonSecretRejected: the API server refused the rendered Secret;
	// nothing more is minted for this generation.
	ReasonSecretRejected = "SecretRejected"
	// ReasonKeyLimitReached: a new key waits until a retiring one is revoked.
	ReasonKeyLimitReached = "KeyLimitReached"

	ReasonCredentialsMissing  = "CredentialsMissing"
	ReasonCredentialsInvalid  = "CredentialsInvalid"
	ReasonEndpointUnreachable = "EndpointUnreachable"
	// ReasonLegacyAPIUnavailable: an AccessKeyV2 issuer whose endpoint no
	// longer serves legacy access keys.
	ReasonLegacyAPIUnavailable = "LegacyAPIUnavailable"
	ReasonInsecureEndpoint     = "InsecureEndpoint"
	ReasonIssuerReady          = "Ready"
	// ReasonInUse: a deleted issuer waits for the AccessKeys that use it.
	ReasonInUse = "InUse"
	// ReasonIssuerDeleting: an AccessKey's issuer is being deleted; its
	// keys are revoked on time, and no new one is minted.
	ReasonIssuerDeleting = "IssuerDeleting"
)

// Event reasons for what happens to keys.
const (
	// EventKeyPublished: a key was created and published in the Secret.
	EventKeyPublished = "KeyPublished"
	EventKeyRetiring  = "KeyRetiring"
	EventKeyRevoked   = "KeyRevoked"
	// EventKeyNotOwned: status named a key Exoscale does not show as
	// minted for this AccessKey; it was left alone.
	EventKeyNotOwned = "KeyNotOwned"
	EventKeyAdopted  = "KeyAdopted"
	EventKeyRenewed  = "KeyRenewed"
	EventKeyOrphaned = "KeyOrphaned"
	EventRefused     = "Refused"
	// EventKeyBeyondCeiling: the issuer no longer allows the current key.
	EventKeyBeyondCeiling = "KeyBeyondCeiling"
	// EventAsyncUnfollowable: a legacy key may start asynchronous
	// operations but not poll them (no get-operation).
	EventAsyncUnfollowable = "AsyncUnfollowable"
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
	// EventLeftLiveKeyGone: a key left live is no longer at Exoscale, and
	// is dropped from the record.
	EventLeftLiveKeyGone = "LeftLiveKeyGone"
	// EventKeyRevokedBeforeRollout: a retiring key reached its grace period
	// before every consumer had rolled onto its successor.
	EventKeyRevokedBeforeRollout = "KeyRevokedBeforeRollout"
)

// stalledReasons are the refusals only an edit fixes (of the object, or of
// what its admin controls: the issuer's ceiling, the conflicting Secret):
// Stalled, so a tool that waits fails at once with the reason. Every other
// refusal heals by itself when what it waits for arrives (an issuer created
// in the same sync, its credentials, a share of the rate) and is
// Reconciling, so a sync that applies everything together converges.
var stalledReasons = []string{
	ReasonNotPermitted, ReasonUnknownOperation, ReasonInvalidSpec, ReasonSecretConflict, ReasonSecretRejected, ReasonRejected,
	// Issuers: an endpoint refused by its scheme, credentials refused, an
	// AccessKeyV2 issuer whose endpoint serves no legacy keys.
	ReasonInsecureEndpoint, ReasonCredentialsInvalid, ReasonLegacyAPIUnavailable,
	// The installed CRDs are older than the manager: an admin applies them.
	ReasonCRDOutdated,
}

// summarize sets Reconciling and Stalled from Ready for kstatus: nothing
// when Ready is True for this generation and settled; Stalled, with Ready's
// reason and message, for a refusal in stalledReasons; Reconciling, saying
// what is under way or awaited, otherwise. settled is false while work is
// recorded in flight (a create), whatever Ready says.
func summarize(conditions *[]metav1.Condition, at time.Time, generation int64, settled bool, reason, message string) {
	ready := meta.FindStatusCondition(*conditions, ConditionReady)
	current := ready != nil && ready.ObservedGeneration == generation
	switch {
	case settled && current && ready.Status == metav1.ConditionTrue:
		meta.RemoveStatusCondition(conditions, ConditionReconciling)
		meta.RemoveStatusCondition(conditions, ConditionStalled)
	case settled && current && slices.Contains(stalledReasons, ready.Reason):
		meta.RemoveStatusCondition(conditions, ConditionReconciling)
		setCondition(conditions, at, generation, ConditionStalled, metav1.ConditionTrue, ready.Reason, ready.Message)
	default:
		meta.RemoveStatusCondition(conditions, ConditionStalled)
		if settled && current && ready.Status == metav1.ConditionFalse {
			reason, message = ready.Reason, ready.Message
		}
		setCondition(conditions, at, generation, ConditionReconciling, metav1.ConditionTrue, reason, message)
	}
}

// setCondition sets a condition; at is the transition time if its status
// changes (the reconciler's clock, which refusal backoffs are measured by).
func setCondition(conditions *[]metav1.Condition, at time.Time, generation int64, conditionType string, status metav1.ConditionStatus,
	reason, message string) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type: conditionType, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(at.Truncate(time.Second)),
	})
}
