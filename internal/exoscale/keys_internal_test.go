package exoscale

import (
	"net/http"
	"testing"
	"time"
)

// A create whose role could not be deleted after its key was refused left
// something behind, however final the key's refusal was.
func TestACreateThatLeftARoleBehindCreatedSomething(t *testing.T) {
	refused := &APIError{Operation: "create-api-key", Status: http.StatusForbidden}
	throttled := &APIError{Operation: "delete-iam-role", Status: http.StatusTooManyRequests, RetryAfter: time.Second}
	if !NothingCreated(refused) {
		t.Fatal("a refused create made nothing")
	}
	if NothingCreated(&leftBehindError{err: refused, roleID: "r-1", cleanup: throttled}) {
		t.Error("a role left behind counts as nothing created")
	}
}

func TestRetryAfterReadsSecondsAndDates(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for header, want := range map[string]time.Duration{
		"7": 7 * time.Second, "": time.Second, "soon": time.Second, "0": time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
	} {
		if got := retryAfter(header, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", header, got, want)
		}
	}
}
