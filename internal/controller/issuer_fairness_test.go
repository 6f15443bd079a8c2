package controller

import (
	"testing"
	"time"
)

func TestMintShareIsFairBetweenNamespaces(t *testing.T) {
	share := newMintShare(10, 5) // 10 mints a second for the issuer, 5 a namespace may hold
	now := time.Unix(0, 0)
	// A storm: the first 5 mints of one namespace go at once, then it waits.
	for i := range 5 {
		if wait := share.take("storm", now); wait != 0 {
			t.Fatalf("mint %d of the storm waits %s", i, wait)
		}
	}
	if wait := share.take("storm", now); wait <= 0 {
		t.Fatal("the storm's sixth mint does not wait")
	}
	// Another namespace's first key does not wait behind the storm.
	if wait := share.take("quiet", now); wait != 0 {
		t.Fatalf("the quiet namespace's first mint waits %s", wait)
	}
	// Over ten seconds, two active namespaces get the rate between them.
	granted := map[string]int{}
	for step := range 1000 {
		at := now.Add(time.Duration(step) * 10 * time.Millisecond)
		for _, ns := range []string{"storm", "quiet"} {
			if share.take(ns, at) == 0 {
				granted[ns]++
			}
		}
	}
	if granted["storm"] < 40 || granted["quiet"] < 40 || granted["storm"]+granted["quiet"] > 110 {
		t.Fatalf("over 10s: %v, want about 50 each and about 100 in all", granted)
	}
	// A namespace that stopped asking gives its share back.
	later := now.Add(30 * time.Second)
	alone := 0
	for step := range 100 {
		if share.take("storm", later.Add(time.Duration(step)*10*time.Millisecond)) == 0 {
			alone++
		}
	}
	if alone < 12 {
		t.Fatalf("alone for 1s the storm got %d mints, want the whole rate (about 10 plus its burst)", alone)
	}
}

// A storm of AccessKeys, each coming back when it is told to: each is sent
// away about once, not once for every token the others took first.
func TestMintShareSendsAStormBackInTurn(t *testing.T) {
	share := newMintShare(10, 5)
	const keys = 100
	start := time.Unix(0, 0)
	asks, minted := 0, 0
	// back holds each AccessKey's next visit; all come at once first.
	back := make([]time.Time, keys)
	for i := range back {
		back[i] = start
	}
	for minted < keys {
		// Visit the AccessKey due first.
		next := -1
		for i, at := range back {
			if !at.IsZero() && (next < 0 || at.Before(back[next])) {
				next = i
			}
		}
		asks++
		if wait := share.take("storm", back[next]); wait > 0 {
			back[next] = back[next].Add(wait)
			continue
		}
		back[next] = time.Time{}
		minted++
	}
	if asks > 2*keys+keys/10 {
		t.Errorf("%d AccessKeys asked %d times to mint, want about twice each", keys, asks)
	}
	if took := share.namespaces["storm"].updated.Sub(start); took > 11*time.Second {
		t.Errorf("the storm took %s to mint at 10 a second with a burst of 5, want about 9.5s", took)
	}
}
