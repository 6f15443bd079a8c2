package emulator

import (
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Profiles are named sets of faults that make the emulator behave like a
// cloud rather than a test double.
//
// "realistic" is what a busy public cloud API looks like from a client:
//   - latency with a long tail: log-normal, 40 ms median, 400 ms p99;
//   - async operations that answer pending for 1 to 3 polls before they
//     succeed, so a client that polls only every 3 s is held for seconds;
//   - a per-key request rate of 50 a second (burst 50), beyond which a call
//     is answered 429 with the Retry-After of the wait, in whole seconds;
//   - list calls 30 ms slower per 1,000 items (a list of 10,000 roles
//     answers in about 340 ms).
//
// "manners" is what Exoscale's API does that a client must be written for:
//   - create-api-key answers 404 for a role created less than 1.5 s ago;
//   - a 429 carries its wait in the body, {"error","retry_after"}, with no
//     Retry-After header (every tenth call is throttled);
//   - errors are RFC 9457 problem details.
//
// "no-legacy" serves no legacy access-key endpoint, as Exoscale's public
// API since 2024.
var Profiles = map[string]Faults{
	"manners":   {RoleLagMS: 1500, ThrottleBody: true, ThrottleRate: 0.1, ProblemJSON: true},
	"no-legacy": {LegacyGone: true},
	"realistic": {LatencyMS: 40, LatencyP99MS: 400, PendingPolls: 1, PendingPollsMax: 3, KeyRate: 50, KeyBurst: 50,
		ListLatencyPer1000MS: 30},
}

// Profile returns the faults of a named profile; "" and "none" are none.
func Profile(name string) (Faults, error) {
	if name == "" || name == "none" {
		return Faults{}, nil
	}
	f, ok := Profiles[name]
	if !ok {
		names := []string{"none"}
		for n := range Profiles {
			names = append(names, n)
		}
		slices.Sort(names)
		return Faults{}, fmt.Errorf("unknown profile %q: want one of %s", name, strings.Join(names, ", "))
	}
	return f, nil
}

// z99 is the standard normal's 99th percentile.
const z99 = 2.3263478740408408

// Latency draws one call's latency: LatencyMS, or log-normal with median
// LatencyMS and 99th percentile LatencyP99MS when that is higher; plus up
// to JitterMS.
func (f Faults) Latency() time.Duration {
	ms := float64(f.LatencyMS)
	if f.LatencyP99MS > f.LatencyMS && f.LatencyMS > 0 {
		sigma := math.Log(float64(f.LatencyP99MS)/float64(f.LatencyMS)) / z99
		ms *= math.Exp(sigma * mrand.NormFloat64())
	}
	if f.JitterMS > 0 {
		ms += float64(mrand.IntN(f.JitterMS + 1))
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// Polls draws how many polls a new async operation answers pending:
// PendingPolls, or uniform between it and PendingPollsMax.
func (f Faults) Polls() int {
	if f.PendingPollsMax > f.PendingPolls {
		return f.PendingPolls + mrand.IntN(f.PendingPollsMax-f.PendingPolls+1)
	}
	return f.PendingPolls
}

// keyRates holds the per-key request limiters of Faults.KeyRate.
type keyRates struct {
	limit    rate.Limit
	burst    int
	limiters map[string]*rate.Limiter
}

func newKeyRates(f Faults) keyRates {
	burst := f.KeyBurst
	if burst <= 0 {
		burst = max(1, int(math.Ceil(f.KeyRate)))
	}
	return keyRates{limit: rate.Limit(f.KeyRate), burst: burst, limiters: map[string]*rate.Limiter{}}
}

// admit takes a request of key from its rate, or says how long it would
// have to wait (and takes nothing). The caller holds the server's lock.
func (k *keyRates) admit(key string, now time.Time) time.Duration {
	if k.limit <= 0 {
		return 0
	}
	l, ok := k.limiters[key]
	if !ok {
		l = rate.NewLimiter(k.limit, k.burst)
		k.limiters[key] = l
	}
	r := l.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return wait
	}
	return 0
}
