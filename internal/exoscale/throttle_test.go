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
func TestThrottleSlowsOnA429AndStopsOnlyAtTheSlowestRate(t *testing.T) {
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

	// 429s while the rate comes down: each halves it and none holds
	// anything back, until the rate is a sixteenth of the configured one.
	for cut := 1; cut <= 4; cut++ {
		th.answered(tick(100*time.Millisecond), http.StatusTooManyRequests, retryAfter)
		if d := wait(th); d > time.Second {
			t.Fatalf("the 429 of cut %d held the next request %s", cut, d)
		}
	}
	wantRate(th, ceiling/16, "four 429s in a row")

	// A 429 at the slowest rate: the cloud refuses even that, so every
	// request waits out the Retry-After.
	th.answered(tick(100*time.Millisecond), http.StatusTooManyRequests, retryAfter)
	wantRate(th, ceiling/16, "a 429 at the slowest rate")
	if d := wait(th); d < retryAfter-time.Second {
		t.Errorf("after a 429 at the slowest rate the next request waits %s, want the Retry-After (%s)", d, retryAfter)
	}

	// A cloud that answers 429 now and then, among many answers that are
	// not 429, never brings the issuer to a stop.
	th = newThrottleAt()
	for call := range 2000 {
		status := http.StatusOK
		if call%20 == 0 {
			status = http.StatusTooManyRequests
		}
		th.answered(tick(10*time.Millisecond), status, time.Second)
		if d := wait(th); d > time.Second {
			t.Fatalf("one 429 in 20 held call %d back %s (rate %v)", call, d, th.rate())
		}
	}
}
