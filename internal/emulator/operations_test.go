package emulator

import (
	"testing"
	"time"
)

// TestFinishedOperationsAreForgotten: the state does not grow with every
// call ever made; a pending operation and a recent one are kept.
func TestFinishedOperationsAreForgotten(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s, err := New(Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c := &call{requestURL: "http://emulator/v2"}
	old := s.newOperationLocked(c, "role-1", "iam-role")
	pending := s.newOperationLocked(c, "role-2", "iam-role")
	pending.PollsLeft = 3
	now = now.Add(operationRetention + time.Second)
	var recent *operation
	for range 512 { // enough to pass a sweep
		recent = s.newOperationLocked(c, "role-3", "iam-role")
	}
	if _, ok := s.state.Operations[old.ID]; ok {
		t.Error("a finished operation older than the retention is still kept")
	}
	if _, ok := s.state.Operations[pending.ID]; !ok {
		t.Error("a pending operation was forgotten")
	}
	if _, ok := s.state.Operations[recent.ID]; !ok {
		t.Error("a recent operation was forgotten")
	}
}
