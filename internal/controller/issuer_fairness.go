package controller

import (
	"sync"
	"time"
)

// mintShare spreads one issuer's mint rate over the namespaces minting on
// it now, so that one namespace's storm of AccessKeys cannot starve
// another's first key. Each namespace that asked within the window holds a
// token bucket refilled at rate/active; a namespace new to the window starts
// with a full bucket. A mint that finds its bucket empty is not waited for:
// the AccessKey is requeued, and the worker goes on to other work. Each
// AccessKey sent away is given its own time to come back, one interval of
// the share after the one before it, so a storm comes back in turn instead
// of all at once for the next token.
type mintShare struct {
	mu         sync.Mutex
	rate       float64 // mints per second for the whole issuer
	burst      float64 // tokens a namespace may hold
	namespaces map[string]*bucket
}

type bucket struct {
	tokens  float64
	updated time.Time
	asked   time.Time
	// next is the earliest time the next AccessKey sent away may be given:
	// those sent away before it have the times up to it.
	next time.Time
}

// shareWindow is how long a namespace counts as minting after it asked.
const shareWindow = 10 * time.Second

func newMintShare(rate float64, burst int) *mintShare {
	return &mintShare{rate: rate, burst: float64(max(burst, 1)), namespaces: map[string]*bucket{}}
}

// take spends a token of namespace's share, or says how long to wait.
func (m *mintShare) take(namespace string, now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	active := 0
	for name, b := range m.namespaces {
		if now.Sub(b.asked) > shareWindow {
			delete(m.namespaces, name)
			continue
		}
		active++
	}
	b, ok := m.namespaces[namespace]
	if !ok {
		b = &bucket{tokens: m.burst, updated: now}
		m.namespaces[namespace] = b
		active++
	}
	share := m.rate / float64(active)
	b.tokens = min(m.burst, b.tokens+now.Sub(b.updated).Seconds()*share)
	b.updated, b.asked = now, now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	interval := seconds(1 / share)
	back := now.Add(seconds((1 - b.tokens) / share))
	if b.next.After(back) {
		back = b.next
	}
	b.next = back.Add(interval)
	return back.Sub(now)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
