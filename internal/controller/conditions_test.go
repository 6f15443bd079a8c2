package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kstatus conditions follow from Ready, as a table.
func TestSummarizeSetsReconcilingAndStalledFromReady(t *testing.T) {
	now := time.Now()
	ready := func(status metav1.ConditionStatus, reason string, generation int64) []metav1.Condition {
		return []metav1.Condition{{Type: ConditionReady, Status: status, Reason: reason, Message: reason + " message", ObservedGeneration: generation}}
	}
	for _, tc := range []struct {
		name                 string
		conditions           []metav1.Condition
		settled              bool
		reconciling, stalled bool
		reason               string
	}{
		{"ready for this generation", ready(metav1.ConditionTrue, ReasonKeyPublished, 2), true, false, false, ""},
		{"ready for the last generation", ready(metav1.ConditionTrue, ReasonKeyPublished, 1), true, true, false, "waiting"},
		{"ready, a create in flight", ready(metav1.ConditionTrue, ReasonKeyPublished, 2), false, true, false, "waiting"},
		{"nothing yet", nil, true, true, false, "waiting"},
		{"beyond the ceiling", ready(metav1.ConditionFalse, ReasonNotPermitted, 2), true, false, true, ReasonNotPermitted},
		{"unknown operation", ready(metav1.ConditionFalse, ReasonUnknownOperation, 2), true, false, true, ReasonUnknownOperation},
		{"Secret conflict", ready(metav1.ConditionFalse, ReasonSecretConflict, 2), true, false, true, ReasonSecretConflict},
		{"refused by the API", ready(metav1.ConditionFalse, ReasonRejected, 2), true, false, true, ReasonRejected},
		{"refused for the last generation, edited since", ready(metav1.ConditionFalse, ReasonNotPermitted, 1), true, true, false, "waiting"},
		{"issuer not found yet", ready(metav1.ConditionFalse, ReasonIssuerNotFound, 2), true, true, false, ReasonIssuerNotFound},
		{"issuer not ready", ready(metav1.ConditionFalse, ReasonIssuerNotReady, 2), true, true, false, ReasonIssuerNotReady},
		{"issuer credentials missing", ready(metav1.ConditionFalse, ReasonCredentialsMissing, 2), true, true, false, ReasonCredentialsMissing},
		{"issuer endpoint refused", ready(metav1.ConditionFalse, ReasonInsecureEndpoint, 2), true, false, true, ReasonInsecureEndpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conditions := append([]metav1.Condition{
				{Type: ConditionReconciling, Status: metav1.ConditionTrue, Reason: "stale"},
				{Type: ConditionStalled, Status: metav1.ConditionTrue, Reason: "stale"},
			}, tc.conditions...)
			summarize(&conditions, now, 2, tc.settled, "waiting", "waiting for something")
			reconciling := meta.FindStatusCondition(conditions, ConditionReconciling)
			stalled := meta.FindStatusCondition(conditions, ConditionStalled)
			if (reconciling != nil) != tc.reconciling || (stalled != nil) != tc.stalled {
				t.Fatalf("Reconciling %v, Stalled %v; want %v, %v", reconciling, stalled, tc.reconciling, tc.stalled)
			}
			for _, c := range []*metav1.Condition{reconciling, stalled} {
				if c == nil {
					continue
				}
				if c.Status != metav1.ConditionTrue || c.Reason != tc.reason || c.ObservedGeneration != 2 {
					t.Errorf("%s: %s %s (generation %d), want True %s for generation 2", c.Type, c.Status, c.Reason, c.ObservedGeneration, tc.reason)
				}
				if r := meta.FindStatusCondition(conditions, ConditionReady); stalled != nil && c.Message != r.Message {
					t.Errorf("Stalled says %q, Ready %q: want the same message", c.Message, r.Message)
				}
			}
		})
	}
}
