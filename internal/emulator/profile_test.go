package emulator_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	v3 "github.com/exoscale/egoscale/v3"

	"github.com/exokey/exokey/internal/emulator"
)

// signedGet makes one signed list-zones call with key and answers its status
// and Retry-After.
func (f *fixture) signedGet(t *testing.T, key, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.endpoint+"/zone", nil)
	emulator.Sign(req, nil, key, secret, time.Now().Add(time.Minute))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func TestKeyRateAnswers429PerKey(t *testing.T) {
	f := start(t, emulator.Options{})
	rootKey, rootSecret := f.root()
	roleID := createRole(t, f, f.rootV3(t), "zones", sosPolicy("b"))
	created, err := f.rootV3(t).CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "other", RoleID: v3.UUID(roleID)})
	if err != nil {
		t.Fatal(err)
	}
	f.server.SetFaults(emulator.Faults{KeyRate: 0.5, KeyBurst: 3})
	for i := range 3 {
		if code, _ := f.signedGet(t, rootKey, rootSecret); code != 200 {
			t.Fatalf("call %d within the burst of 3: %d, want 200", i+1, code)
		}
	}
	code, retryAfter := f.signedGet(t, rootKey, rootSecret)
	if code != http.StatusTooManyRequests {
		t.Fatalf("fourth call beyond the burst: %d, want 429", code)
	}
	// Half a request a second: the next token is up to 2 s away.
	if seconds, _ := strconv.Atoi(retryAfter); seconds < 1 || seconds > 2 {
		t.Errorf("Retry-After %q, want the wait in whole seconds (1 or 2)", retryAfter)
	}
	if code, _ := f.signedGet(t, created.Key, created.Secret); code != 200 {
		t.Errorf("another key's first call: %d, want 200: the rate is per key", code)
	}
}

func TestPendingPollsAreDrawnPerOperation(t *testing.T) {
	f := start(t, emulator.Options{Faults: emulator.Faults{PendingPolls: 1, PendingPollsMax: 3}})
	c := f.rootV3(t)
	seen := map[int]int{}
	for i := range 30 {
		op, err := c.CreateIAMRole(f.ctx, v3.CreateIAMRoleRequest{Name: "r" + strconv.Itoa(i), Policy: sosPolicy("b")})
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for op.State == v3.OperationStatePending {
			pending++
			if op, err = c.GetOperation(f.ctx, op.ID); err != nil {
				t.Fatal(err)
			}
		}
		if op.State != v3.OperationStateSuccess {
			t.Fatalf("operation ended %s", op.State)
		}
		seen[pending-1]++ // the create's own answer was pending too
	}
	for polls := range seen {
		if polls < 1 || polls > 3 {
			t.Errorf("an operation answered pending to %d polls, want 1 to 3", polls)
		}
	}
	if len(seen) < 2 {
		t.Errorf("30 operations all pending for the same number of polls (%v): the count is not drawn", seen)
	}
}

func TestRealisticLatencyHasALongTail(t *testing.T) {
	f, err := emulator.Profile("realistic")
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]time.Duration, 20000)
	for i := range samples {
		samples[i] = f.Latency()
	}
	slices.Sort(samples)
	median, p99 := samples[len(samples)/2], samples[len(samples)*99/100]
	if median < 36*time.Millisecond || median > 44*time.Millisecond {
		t.Errorf("median latency %s, want 40ms within 10%%", median)
	}
	if p99 < 340*time.Millisecond || p99 > 460*time.Millisecond {
		t.Errorf("p99 latency %s, want 400ms within 15%%", p99)
	}
	if _, err := emulator.Profile("fast"); err == nil {
		t.Error("an unknown profile must be refused")
	}
}

func TestListsTakeLongerForMoreItems(t *testing.T) {
	f := start(t, emulator.Options{})
	client := f.rootV3(t)
	roleID := createRole(t, f, client, "listed", sosPolicy("b"))
	for i := range 50 {
		if _, err := client.CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "listed-" + strconv.Itoa(i), RoleID: v3.UUID(roleID)}); err != nil {
			t.Fatal(err)
		}
	}
	// 2 s per 1,000 items: 50 keys cost at least 100 ms more.
	f.server.SetFaults(emulator.Faults{ListLatencyPer1000MS: 2000})
	started := time.Now()
	keys, err := client.ListAPIKeys(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.APIKeys) < 50 {
		t.Fatalf("listed %d keys, want at least 50", len(keys.APIKeys))
	}
	if took := time.Since(started); took < 100*time.Millisecond {
		t.Errorf("a list of %d keys answered in %s, want at least 100 ms", len(keys.APIKeys), took)
	}
	if realistic, _ := emulator.Profile("realistic"); realistic.ListLatencyPer1000MS <= 0 {
		t.Error("the realistic profile's lists take no longer for more items")
	}
}
