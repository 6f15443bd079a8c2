package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale"
)

func TestRefusalRetryBacksOffFrom5SecondsTo5Minutes(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := &AccessKeyReconciler{Clock: clocktesting.NewFakePassiveClock(now)}
	synced := func(status metav1.ConditionStatus, since time.Duration) *iamv1beta1.AccessKeyStatus {
		return &iamv1beta1.AccessKeyStatus{Conditions: []metav1.Condition{{
			Type: ConditionSynced, Status: status, LastTransitionTime: metav1.NewTime(now.Add(-since)),
		}}}
	}
	for _, tc := range []struct {
		name   string
		status *iamv1beta1.AccessKeyStatus
		want   time.Duration
	}{
		{"refused just now", synced(metav1.ConditionFalse, 0), 5 * time.Second},
		{"refused 3 s ago", synced(metav1.ConditionFalse, 3*time.Second), 5 * time.Second},
		{"refused 40 s ago", synced(metav1.ConditionFalse, 40*time.Second), 40 * time.Second},
		{"refused an hour ago", synced(metav1.ConditionFalse, time.Hour), 5 * time.Minute},
		{"no condition yet", &iamv1beta1.AccessKeyStatus{}, 5 * time.Second},
		{"synced for an hour", synced(metav1.ConditionTrue, time.Hour), 5 * time.Second},
	} {
		if got := r.refusalRetry(tc.status); got != tc.want {
			t.Errorf("%s: retry after %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestIssuerSlotsBoundTheWorkersOfOneIssuer(t *testing.T) {
	now := time.Unix(0, 0)
	slots := newIssuerSlots(4, 2)
	// Alone, an issuer may use every worker but one.
	var dead []func()
	for i := range 3 {
		release, ok := slots.take("ClusterKeyIssuer/dead", now)
		if !ok {
			t.Fatalf("worker %d of an issuer alone gets no slot", i+1)
		}
		dead = append(dead, release)
	}
	if _, ok := slots.take("ClusterKeyIssuer/dead", now); ok {
		t.Fatal("an issuer alone takes the last worker too")
	}
	// A newcomer gets the worker kept free; from then on the first issuer
	// holds no more than its share.
	healthy, ok := slots.take("KeyIssuer/team/healthy", now)
	if !ok {
		t.Fatal("another issuer's worker waits for the first issuer's")
	}
	dead[0]()
	if _, ok := slots.take("ClusterKeyIssuer/dead", now.Add(time.Second)); ok {
		t.Fatal("an issuer over its share takes a released slot while another has work")
	}
	dead[1]()
	release, ok := slots.take("ClusterKeyIssuer/dead", now.Add(time.Second))
	if !ok {
		t.Fatal("an issuer under its share gets no slot")
	}
	release()
	healthy()
	if _, held := slots.held["KeyIssuer/team/healthy"]; held {
		t.Error("an issuer with no slot held is still remembered")
	}
	// The other holds nothing and was never turned away: a drift check
	// that came and went bounds nobody, and the first has every worker but
	// one again at once.
	for range 2 {
		if _, ok := slots.take("ClusterKeyIssuer/dead", now.Add(time.Second)); !ok {
			t.Fatal("an issuer alone again is held to its share")
		}
	}
	var unbounded *issuerSlots
	if _, ok := unbounded.take("any", now); !ok {
		t.Error("a nil issuerSlots bounds nothing")
	}
}

// An issuer turned away counts as having work for the window, though it
// holds nothing: its AccessKeys come back within it.
func TestATurnedAwayIssuerCountsForTheWindow(t *testing.T) {
	now := time.Unix(0, 0)
	slots := newIssuerSlots(4, 2)
	if _, ok := slots.take("A", now); !ok {
		t.Fatal("A's first slot must be free")
	}
	var b []func()
	for range 2 {
		release, ok := slots.take("B", now)
		if !ok {
			t.Fatal("B's share must be free")
		}
		b = append(b, release)
	}
	if _, ok := slots.take("B", now); ok {
		t.Fatal("B takes more than its share while A holds a worker")
	}
	for _, release := range b {
		release()
	}
	if _, ok := slots.take("A", now); !ok {
		t.Fatal("A gets no slot within its share")
	}
	if _, ok := slots.take("A", now); ok {
		t.Fatal("A takes more than its share while B, just turned away, has work")
	}
	if _, ok := slots.take("A", now.Add(slotWindow+time.Second)); !ok {
		t.Fatal("A is still bounded after B's window passed")
	}

	// An issuer turned away counts until it gets a worker: the tail of
	// its flood does not bound the next issuer for the whole window.
	slots = newIssuerSlots(4, 2)
	b1, _ := slots.take("B", now)
	var a []func()
	for range 2 {
		release, ok := slots.take("A", now)
		if !ok {
			t.Fatal("A's share must be free")
		}
		a = append(a, release)
	}
	if _, ok := slots.take("A", now); ok {
		t.Fatal("A takes more than its share while B holds a worker")
	}
	b1()
	release, ok := slots.take("A", now)
	if !ok {
		t.Fatal("A alone again gets no slot")
	}
	for _, release := range append(a, release) {
		release()
	}
	for i := range 3 {
		if _, ok := slots.take("B", now); !ok {
			t.Fatalf("B's worker %d: A, turned away and served since, still bounds B", i+1)
		}
	}
}

func TestIssuersOfListsEveryIssuerAnAccessKeyDependsOn(t *testing.T) {
	minted := func(kind iamv1beta1.IssuerKind, name string) iamv1beta1.MintingIssuer {
		return iamv1beta1.MintingIssuer{Kind: kind, Name: name}
	}
	ak := &iamv1beta1.AccessKey{}
	ak.Namespace = "team"
	ak.Spec.IssuerRef = iamv1beta1.IssuerReference{Kind: iamv1beta1.KeyIssuerKind, Name: "new"}
	ak.Status.Issuer = minted(iamv1beta1.ClusterKeyIssuerKind, "old")
	ak.Status.Retiring = []iamv1beta1.RetiringKey{{KeyID: "EXO1", Issuer: minted(iamv1beta1.ClusterKeyIssuerKind, "old")},
		{KeyID: "EXO2", Issuer: minted(iamv1beta1.ClusterKeyIssuerKind, "older")}}
	ak.Status.Pending = iamv1beta1.PendingKey{KeyName: "k", Issuer: minted(iamv1beta1.KeyIssuerKind, "new")}
	got := issuersOf(ak)
	want := []string{"KeyIssuer/team/new", "ClusterKeyIssuer/old", "ClusterKeyIssuer/older"}
	if !slices.Equal(got, want) {
		t.Errorf("issuersOf = %v, want %v", got, want)
	}
}

func TestNothingCreatedDecidesWhetherThePendingRecordGoes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused for good (403)", &exoscale.APIError{Operation: "create-iam-role", Status: 403}, true},
		{"a spec the catalogue refuses", &exoscale.SpecError{Reason: exoscale.ReasonUnknownOperation}, true},
		{"throttled (429)", &exoscale.APIError{Operation: "create-iam-role", Status: 429, RetryAfter: time.Second}, true},
		{"not sent: the client's rate", &exoscale.APIError{Operation: "create-iam-role", RetryAfter: time.Second}, true},
		{"a 503: may have been applied", &exoscale.APIError{Operation: "create-api-key", Status: 503}, false},
		{"no answer (timeout)", &exoscale.APIError{Operation: "create-api-key"}, false},
		{"wrapped 504", fmt.Errorf("create: %w", &exoscale.APIError{Operation: "create-access-key", Status: 504}), false},
		{"not an API error", errors.New("boom"), false},
	} {
		if got := exoscale.NothingCreated(tc.err); got != tc.want {
			t.Errorf("%s: NothingCreated = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A worker turned away by a busy issuer waits a little for the next
// release instead of sending the AccessKey straight back to the queue.
func TestTakeWithinWaitsForTheNextRelease(t *testing.T) {
	slots := newIssuerSlots(2, 1)
	now := time.Now
	release, ok := slots.take("ClusterKeyIssuer/busy", now())
	if !ok {
		t.Fatal("the first slot must be free")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		release()
	}()
	started := time.Now()
	second, ok := slots.takeWithin(context.Background(), "ClusterKeyIssuer/busy", now, 5*time.Second)
	if !ok || time.Since(started) > 2*time.Second {
		t.Fatalf("a slot released after 20ms: got it %v after %s, want it at the release", ok, time.Since(started))
	}
	started = time.Now()
	if _, ok := slots.takeWithin(context.Background(), "ClusterKeyIssuer/busy", now, 50*time.Millisecond); ok {
		t.Fatal("no slot was released: the wait must give up")
	}
	if waited := time.Since(started); waited < 50*time.Millisecond {
		t.Errorf("gave up after %s, want the full patience of 50ms", waited)
	}
	// Another issuer has work: the worker kept for it is not held.
	if _, ok := slots.take("KeyIssuer/team/other", now()); !ok {
		t.Fatal("another issuer's first slot must be free")
	}
	started = time.Now()
	if _, ok := slots.takeWithin(context.Background(), "ClusterKeyIssuer/busy", now, 5*time.Second); ok || time.Since(started) > time.Second {
		t.Errorf("with another issuer asking: got a slot %v after %s, want a refusal at once", ok, time.Since(started))
	}
	second()
}
