package controller

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

func accessKeyAt(name, rv string) *iamv1beta1.AccessKey {
	return &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, ResourceVersion: rv}}
}

// TestOwnWritesPassOnlyOthersEvents: the event of a recorded write is
// dropped once; every other event passes, including those a tenant can
// cause around exokey's writes.
func TestOwnWritesPassOnlyOthersEvents(t *testing.T) {
	// Each change is one of metadata (as a finalizer exokey adds, or a
	// tenant's annotation), not of status alone.
	update := func(name, from, to string) event.UpdateEvent {
		changed := accessKeyAt(name, to)
		changed.Annotations = map[string]string{"changed-at": to}
		return event.UpdateEvent{ObjectOld: accessKeyAt(name, from), ObjectNew: changed}
	}
	for _, tc := range []struct {
		name   string
		writes [][2]string // from, to of exokey's writes of key "a"
		event  event.UpdateEvent
		passes bool
	}{
		{"exokey's own status write", [][2]string{{"10", "11"}}, update("a", "10", "11"), false},
		{"a tenant's edit after exokey's write", [][2]string{{"10", "11"}}, update("a", "11", "12"), true},
		{"a tenant's edit between exokey's read and its write (a patch without a lock)", [][2]string{{"10", "12"}},
			update("a", "11", "12"), true},
		{"a relist that folds a tenant's edit into exokey's write", [][2]string{{"11", "12"}}, update("a", "10", "12"), true},
		{"the same versions on another AccessKey", [][2]string{{"10", "11"}}, update("b", "10", "11"), true},
		{"the second of two writes in one pass", [][2]string{{"10", "11"}, {"11", "12"}}, update("a", "11", "12"), false},
		{"nothing recorded", nil, update("a", "10", "11"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own := newOwnWrites()
			for _, w := range tc.writes {
				own.record("AccessKey", accessKeyAt("a", w[1]), w[0])
			}
			p := own.notOwn("AccessKey")
			if got := p.Update(tc.event); got != tc.passes {
				t.Fatalf("Update passes = %v, want %v", got, tc.passes)
			}
			if !tc.passes && !p.Update(tc.event) {
				t.Fatal("the same event a second time was dropped again: a write is recognised once")
			}
		})
	}
}

// TestOwnWritesInFlight: an event that arrives before its write's answer
// is still exokey's; a write that failed is forgotten.
func TestOwnWritesInFlight(t *testing.T) {
	own := newOwnWrites()
	p := own.notOwn("AccessKey")
	edited := func(from, to string) event.UpdateEvent {
		changed := accessKeyAt("a", to)
		changed.Finalizers = []string{iamv1beta1.RevokeFinalizer}
		return event.UpdateEvent{ObjectOld: accessKeyAt("a", from), ObjectNew: changed}
	}
	ak := accessKeyAt("a", "10")
	wr := own.begin("AccessKey", ak, "10")
	if !p.Update(edited("9", "10")) {
		t.Fatal("an event from another version was dropped while a write was in flight")
	}
	if p.Update(edited("10", "11")) {
		t.Fatal("the event of the write in flight passed")
	}
	ak.ResourceVersion = "11"
	own.end("AccessKey", ak, wr, nil)
	if !p.Update(edited("10", "11")) {
		t.Fatal("the write's event was dropped twice")
	}
	if n := own.len(); n != 0 {
		t.Fatalf("%d objects remembered after their write's event, want 0", n)
	}

	failed := own.begin("AccessKey", ak, "11")
	own.end("AccessKey", ak, failed, errors.New("conflict"))
	if !p.Update(edited("11", "12")) {
		t.Fatal("a tenant's write was dropped for exokey's that failed")
	}
}

// TestStatusOnlyChangesAreNotNews: a change of status alone is exokey's
// (tenants cannot write status); any change a tenant can make passes.
func TestStatusOnlyChangesAreNotNews(t *testing.T) {
	base := &iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "a", ResourceVersion: "10", Generation: 1,
		Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": "x"}, Finalizers: []string{iamv1beta1.RevokeFinalizer}}}
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		change func(*iamv1beta1.AccessKey)
		passes bool
	}{
		{"status", func(ak *iamv1beta1.AccessKey) { ak.Status.KeyID = "EXO1" }, false},
		{"spec (a new generation)", func(ak *iamv1beta1.AccessKey) { ak.Generation = 2 }, true},
		{"a label", func(ak *iamv1beta1.AccessKey) { ak.Labels["team"] = "b" }, true},
		{"an annotation (a rotation request)", func(ak *iamv1beta1.AccessKey) { ak.Annotations[iamv1beta1.RotateAnnotation] = "now" }, true},
		{"the finalizers", func(ak *iamv1beta1.AccessKey) { ak.Finalizers = nil }, true},
		{"an owner", func(ak *iamv1beta1.AccessKey) { ak.OwnerReferences = []metav1.OwnerReference{{Name: "app"}} }, true},
		{"the deletion", func(ak *iamv1beta1.AccessKey) { ak.DeletionTimestamp = &now }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := base.DeepCopy()
			changed.ResourceVersion = "11"
			tc.change(changed)
			p := newOwnWrites().notOwn("AccessKey")
			if got := p.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: changed}); got != tc.passes {
				t.Fatalf("a change of %s passes = %v, want %v", tc.name, got, tc.passes)
			}
		})
	}
}

func TestOwnWritesRecognisesCreatesAndForgetsDeletedObjects(t *testing.T) {
	own := newOwnWrites()
	p := own.notOwn("Secret")
	created := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "s", ResourceVersion: "7"}}
	own.record("Secret", created, "")
	if p.Create(event.CreateEvent{Object: created}) {
		t.Fatal("exokey's own create passed")
	}
	other := created.DeepCopy()
	other.ResourceVersion = "8"
	if !p.Create(event.CreateEvent{Object: other}) {
		t.Fatal("a create exokey did not make was dropped")
	}
	own.record("Secret", other, "8") // no change: nothing recorded
	own.record("Secret", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "s", ResourceVersion: "9"}}, "8")
	if !p.Delete(event.DeleteEvent{Object: other}) {
		t.Fatal("a delete was dropped")
	}
	if n := own.len(); n != 0 {
		t.Fatalf("%d objects remembered after the delete, want 0", n)
	}
	for i := range 2 * keptWrites {
		own.record("Secret", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "s",
			ResourceVersion: string(rune('a' + i + 1))}}, string(rune('a'+i)))
	}
	var o client.Object = created
	if got := len(own.writes[objectOf("Secret", o)]); got != keptWrites {
		t.Fatalf("%d writes remembered for one object, want at most %d", got, keptWrites)
	}
}
