package exoscale_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
)

// TestTheRealAPIsManners: what Exoscale's API does that a client must be
// written for, produced by the emulator's profiles. Each part fails when
// its handling is taken out.
func TestTheRealAPIsManners(t *testing.T) {
	t.Run("create-api-key right after create-iam-role is retried on a 404", func(t *testing.T) {
		e := newEnv(t)
		e.server.SetFaults(emulator.Faults{RoleLagMS: 600})
		started := time.Now()
		cred, err := e.rootKeys(t, exoscale.APIIAMv3).Create(e.ctx, exoscale.KeySpec{Name: "lagged", Operations: []string{"list-zones"}})
		if err != nil {
			t.Fatalf("create through the role's lag: %v", err)
		}
		if waited := time.Since(started); waited < 600*time.Millisecond || cred.ID == "" {
			t.Errorf("the key came after %s, before the role was visible", waited)
		}
		if n := e.server.Stats().ByOperationStatus["create-api-key 404"]; n == 0 {
			t.Error("the emulator answered no 404: the lag was not produced")
		}
	})
	t.Run("a 429 with its wait in the body is honoured", func(t *testing.T) {
		e := newEnv(t)
		e.server.SetFaults(emulator.Faults{ThrottleBody: true, ThrottleNext: 1, RetryAfterSeconds: 5})
		keys := e.rootKeys(t, exoscale.APIIAMv3, func(c *exoscale.Config) { c.RetryWaitMax = time.Second })
		_, err := keys.Get(e.ctx, "EXO000000000000000000000000")
		wait, throttled := exoscale.RetryAfter(err)
		if !throttled || wait != 5*time.Second {
			t.Errorf("a 429 whose body asks for 5 s: got %v (wait %s), want the call to give the wait back", err, wait)
		}
	})
	t.Run("RFC 9457 problem details are read", func(t *testing.T) {
		e := newEnv(t)
		e.server.SetFaults(emulator.Faults{ProblemJSON: true})
		_, err := e.rootKeys(t, exoscale.APIIAMv3).Create(e.ctx, exoscale.KeySpec{Name: strings.Repeat("x", 300), Operations: []string{"list-zones"}})
		var apiErr *exoscale.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, "between 1 and 191 characters") {
			t.Errorf("got %v, want the problem's detail as the message", err)
		}
	})
	t.Run("an endpoint without legacy access keys says so", func(t *testing.T) {
		e := newEnv(t)
		e.server.SetFaults(emulator.Faults{LegacyGone: true})
		_, err := e.rootKeys(t, exoscale.APIAccessKeyV2).Grantable(e.ctx)
		if !errors.Is(err, exoscale.ErrLegacyAPIGone) || !strings.Contains(err.Error(), "api: IAMv3") {
			t.Errorf("got %v, want ErrLegacyAPIGone pointing to IAMv3", err)
		}
	})
}
