package exoscale

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// The throttle's answers to a sequence of 429s and successes, on a clock
// the test moves. The rate starts at 16 a second; a reservation whose wait
// is longer than a nanosecond is reported, not waited for.
func TestThrottleSlowsOnA429AndStopsOnlyForALimitThatHolds(t *testing.T) {
	const ceiling, retryAfter = 16, 30 * time.Second
	start := time.Now()
	clock := start
	newThrottleAt := func() *throttle {
		th := newThrottle(ceiling, 1, time.Nanosecond)
		th.now = func() time.Time { return clock }
		return th
	}
	tick := func(d time.Duration) time.Time { clock = clock.Add(d); return clock }
	wait := func(th *throttle) time.Duration {
		d, err := th.reserve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	wantRate := func(th *throttle, want rate.Limit, after string) {
		t.Helper()
		if got := th.rate(); got != want {
			t.Errorf("after %s: %v requests a second, want %v", after, got, want)
		}
	}

	th := newThrottleAt()
	sent := tick(time.Second)
	if d := wait(th); d != 0 {
		t.Fatalf("the first request waited %s", d)
	}

	// One 429: half the rate, and no pause, however long the Retry-After.
	tick(50 * time.Millisecond)
	th.answered(sent, http.StatusTooManyRequests, retryAfter)
	wantRate(th, ceiling/2, "a 429")
	if d := wait(th); d > time.Second {
		t.Errorf("a single 429 held the next request %s, want it sent at the halved rate", d)
	}

	// A 429 to a request sent before the cut is not news.
	th.answered(sent, http.StatusTooManyRequests, retryAfter)
	wantRate(th, ceiling/2, "a 429 to a request in flight at the cut")

	// Answers that are not 429 give the rate back a sixteenth at a time,
	// and never more than the configured rate.
	for range 7 {
		th.answered(tick(10*time.Millisecond), http.StatusOK, 0)
	}
	wantRate(th, ceiling-1, "7 successes")
	th.answered(tick(10*time.Millisecond), http.StatusNotFound, 0)
	th.answered(tick(10*time.Millisecond), http.StatusServiceUnavailable, 0)
	wantRate(th, ceiling, "9 answers that are not 429")

	// A 429, then another to a request sent after the cut: the limit holds
	// at the lower rate, so every request waits out the Retry-After.
	th.answered(tick(time.Second), http.StatusTooManyRequests, retryAfter)
	th.answered(tick(100*time.Millisecond), http.StatusTooManyRequests, retryAfter)
	wantRate(th, ceiling/4, "two 429s in a row")
	if d := wait(th); d < retryAfter-time.Second {
		t.Errorf("after two 429s in a row the next request waits %s, want the Retry-After (%s)", d, retryAfter)
	}

	// A success between two 429s: two hints, no pause.
	th = newThrottleAt()
	th.answered(tick(time.Second), http.StatusTooManyRequests, retryAfter)
	th.answered(tick(100*time.Millisecond), http.StatusOK, 0)
	th.answered(tick(100*time.Millisecond), http.StatusTooManyRequests, retryAfter)
	if d := wait(th); d > time.Second {
		t.Errorf("two 429s with a success between held the next request %s", d)
	}

	// However many cuts, the rate stays at a sixteenth or more.
	for range 10 {
		th.answered(tick(time.Second), http.StatusTooManyRequests, time.Second)
	}
	wantRate(th, ceiling/16, "ten cuts")
}
