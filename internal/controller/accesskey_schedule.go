package controller

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// When an AccessKey is looked at again. Each pass ends with the earliest of
// what it waits for: a retiring key's revocation, a rotation, or a retry of
// a refusal, or the resync period. Drift needs no wake of its own: the
// inventory sends back the AccessKeys whose keys it finds drifted.

const (
	// minBackoff and maxBackoff bound the retries of a refusal.
	minBackoff = 5 * time.Second
	maxBackoff = 5 * time.Minute
)

// nextRevocation is when the next retiring key is due, or zero when none is.
func (r *AccessKeyReconciler) nextRevocation(status *iamv1beta1.AccessKeyStatus) time.Duration {
	var next time.Duration
	for _, old := range status.Retiring {
		d := max(timeOf(old.RevokeAt).Sub(r.Clock.Now()), time.Second)
		if next == 0 || d < next {
			next = d
		}
	}
	return next
}

// nextWake is the earliest of the next revocation, the next rotation and
// the resync period.
func (r *AccessKeyReconciler) nextWake(status *iamv1beta1.AccessKeyStatus) time.Duration {
	now := r.Clock.Now()
	wake := jittered(r.ResyncPeriod)
	consider := func(at time.Time) {
		if d := max(at.Sub(now), time.Second); d < wake {
			wake = d
		}
	}
	for _, old := range status.Retiring {
		consider(timeOf(old.RevokeAt))
		if len(old.Consumers) > 0 { // waiting for consumers: look again soon
			if old.RevokeAfter != nil && now.Before(old.RevokeAfter.Time) {
				consider(old.RevokeAfter.Time)
			} else {
				consider(now.Add(rolloutPoll))
			}
		}
	}
	if status.NextRotationAt != nil {
		consider(status.NextRotationAt.Time)
	}
	return wake
}

// refusalRetry is when a refused AccessKey is tried again: 5 s after the
// refusal began, then after as long again as it has lasted (5 s, 10 s,
// 20 s ...), never later than 5 minutes. It is measured from the Synced
// condition's last transition, so it needs no memory and survives restarts.
func (r *AccessKeyReconciler) refusalRetry(status *iamv1beta1.AccessKeyStatus) time.Duration {
	var lasted time.Duration
	if c := findCondition(status.Conditions, ConditionSynced); c != nil && c.Status == metav1.ConditionFalse {
		lasted = r.Clock.Now().Sub(c.LastTransitionTime.Time)
	}
	return min(max(lasted, minBackoff), maxBackoff)
}
