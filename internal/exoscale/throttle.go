package exoscale

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// throttle is one issuer's request rate, adapted to the cloud's 429s the
// way a congestion window is (additive increase, multiplicative decrease).
//
// A 429 is a hint: it halves the rate, once for every request that was in
// flight when it came, and each answer that is not a 429 gives back a
// sixteenth of the configured rate. Only a 429 at the slowest rate, a
// sixteenth of the configured one, holds every request back for its
// Retry-After: the cloud refuses even that. So a cloud that answers 429 now
// and then slows the issuer a little, and a limit that holds brings it down
// in a few round trips and then stops it for as long as the cloud asks.
type throttle struct {
	limiter *rate.Limiter
	ceiling rate.Limit // the configured rate, never exceeded
	floor   rate.Limit // the slowest a run of cuts makes it
	maxWait time.Duration
	now     func() time.Time

	mu sync.Mutex
	// cutAt is when the rate was last cut: an answer to a request sent
	// before it says nothing the cut did not already act on.
	cutAt       time.Time
	pausedUntil time.Time
}

func newThrottle(qps float64, burst int, maxWait time.Duration) *throttle {
	return &throttle{
		limiter: rate.NewLimiter(rate.Limit(qps), burst),
		ceiling: rate.Limit(qps),
		floor:   rate.Limit(qps / 16),
		maxWait: maxWait,
		now:     time.Now,
	}
}

// reserve takes a token of the rate limit, waiting for it (and for a
// pause) when that is short; it returns how long the wait would be when it
// is too long to hold a worker for, and takes nothing then.
func (t *throttle) reserve(ctx context.Context) (time.Duration, error) {
	now := t.now()
	t.mu.Lock()
	paused := max(t.pausedUntil.Sub(now), 0)
	t.mu.Unlock()
	r := t.limiter.ReserveN(now.Add(paused), 1)
	delay := r.DelayFrom(now)
	if delay > t.maxWait {
		r.Cancel()
		return delay, nil
	}
	if delay == 0 {
		return 0, nil
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return 0, nil
	case <-ctx.Done():
		r.Cancel()
		return 0, ctx.Err()
	}
}

// answered adapts the rate to the answer of a request sent at sentAt:
// status is its HTTP status, wait the Retry-After of a 429.
func (t *throttle) answered(sentAt time.Time, status int, wait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sentAt.Before(t.cutAt) {
		return
	}
	now := t.now()
	limit := t.limiter.Limit()
	if status != http.StatusTooManyRequests {
		if limit < t.ceiling {
			t.limiter.SetLimitAt(now, min(limit+t.ceiling/16, t.ceiling))
		}
		return
	}
	if limit <= t.floor && now.Add(wait).After(t.pausedUntil) {
		t.pausedUntil = now.Add(wait)
	}
	t.cutAt = now
	t.limiter.SetLimitAt(now, max(limit/2, t.floor))
	// The tokens saved up at the old rate would let a burst through.
	if saved := int(t.limiter.TokensAt(now)); saved > 0 {
		t.limiter.ReserveN(now, saved)
	}
}

// rate is the request rate the throttle allows now.
func (t *throttle) rate() rate.Limit {
	return t.limiter.Limit()
}
