package controller

import (
	"math/rand/v2"
	"sync"
	"time"
)

// issuerSlots bounds how many workers the AccessKeys of one issuer hold at
// once. A worker that finds its issuer's slots taken does not wait: the
// AccessKey is requeued and the worker goes on to another issuer's work.
type issuerSlots struct {
	mu   sync.Mutex
	max  int
	held map[string]int
}

func newIssuerSlots(max int) *issuerSlots {
	return &issuerSlots{max: max, held: map[string]int{}}
}

// take takes one of the issuer's slots, and returns its release, or false
// when all are held. A nil issuerSlots bounds nothing.
func (s *issuerSlots) take(issuer string) (release func(), ok bool) {
	if s == nil {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[issuer] >= s.max {
		return nil, false
	}
	s.held[issuer]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.held[issuer]--; s.held[issuer] <= 0 {
			delete(s.held, issuer)
		}
	}, true
}

// jittered is d plus up to half of it, so AccessKeys sent back together do
// not all come back together.
func jittered(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}
