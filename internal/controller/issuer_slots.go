package controller

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// issuerSlots bounds how many workers the AccessKeys of one issuer hold at
// once, while other issuers have work: an issuer whose endpoint hangs then
// holds at most its share, and the others' AccessKeys go on. An issuer
// alone may use every worker but one, kept for a newcomer. Another issuer
// has work while it holds a worker, or since it was turned away until it
// gets one (for the window at most); one that merely had work a moment ago
// (a drift check, the tail of a flood) bounds nobody.
type issuerSlots struct {
	mu      sync.Mutex
	workers int // the controller's workers
	share   int // what one issuer holds while others ask too
	held    map[string]int
	// turnedAway is when each issuer last found its slots taken.
	turnedAway map[string]time.Time
	// freed is closed, and replaced, each time a slot is released.
	freed chan struct{}
}

// slotWindow is how long an issuer counts as having work after it was
// turned away: its AccessKeys are back within it.
const slotWindow = 10 * time.Second

func newIssuerSlots(workers, share int) *issuerSlots {
	return &issuerSlots{workers: workers, share: max(share, 1), held: map[string]int{}, turnedAway: map[string]time.Time{},
		freed: make(chan struct{})}
}

// takeWithin is take that waits up to patience for one of the issuer's
// slots to be released. A worker turned away at once would come back for
// the same AccessKey again and again while the issuer's slots stay busy;
// waiting a little for the next release costs nothing while the issuer is
// alone. When another issuer has work, the worker is turned away at once,
// so a tenant's flood on a hanging issuer cannot hold it.
func (s *issuerSlots) takeWithin(ctx context.Context, issuer string, now func() time.Time, patience time.Duration) (func(), bool) {
	if s == nil {
		return func() {}, true
	}
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		s.mu.Lock()
		freed := s.freed
		s.mu.Unlock()
		if release, ok := s.take(issuer, now()); ok {
			return release, true
		}
		if s.othersHaveWork(issuer, now()) {
			// The reserved worker is for them: do not hold it.
			return nil, false
		}
		select {
		case <-freed:
		case <-timer.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

// othersHaveWork says whether another issuer holds a worker or was turned
// away within the window.
func (s *issuerSlots) othersHaveWork(issuer string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.othersHaveWorkLocked(issuer, now)
}

func (s *issuerSlots) othersHaveWorkLocked(issuer string, now time.Time) bool {
	for other := range s.held {
		if other != issuer {
			return true
		}
	}
	for other, at := range s.turnedAway {
		if now.Sub(at) > slotWindow {
			delete(s.turnedAway, other)
		} else if other != issuer {
			return true
		}
	}
	return false
}

// take takes one of the issuer's slots, and returns its release, or false
// when its share is held. A nil issuerSlots bounds nothing.
func (s *issuerSlots) take(issuer string, now time.Time) (release func(), ok bool) {
	if s == nil {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.share
	if !s.othersHaveWorkLocked(issuer, now) {
		limit = max(s.share, s.workers-1)
	}
	if s.held[issuer] >= limit {
		s.turnedAway[issuer] = now
		return nil, false
	}
	delete(s.turnedAway, issuer) // it holds a worker now, and counts by that
	s.held[issuer]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.held[issuer]--; s.held[issuer] <= 0 {
			delete(s.held, issuer)
		}
		close(s.freed)
		s.freed = make(chan struct{})
	}, true
}

// jittered is d plus up to half of it, so AccessKeys sent back together do
// not all come back together.
func jittered(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}
