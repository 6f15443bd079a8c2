package controller

import (
	"context"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// ownWrites remembers the writes the reconciler itself makes to
// AccessKeys and their Secrets, so that their watch events do not wake it
// a second time for a state it has already acted on.
//
// Every such write carries a precondition: a create, or the
// resourceVersion it was made on (an update, or a patch with the
// optimistic lock). So of all writes made on one version, at most one
// succeeds, and a write is known by that version. While it is in flight,
// the first event from that version is taken as its own; once it has
// succeeded, only the event from exactly that version to exactly the one
// it produced is. Anything else passes: a tenant's edit has versions of
// its own, and an informer that relisted after missing events reports
// several writes as one update from an older version, which matches none.
// A tenant's write that wins the race for a version is taken for exokey's
// while exokey's is in flight; exokey's then fails with a conflict, and
// the pass, failing with it, is retried and sees the tenant's edit.
type ownWrites struct {
	mu sync.Mutex
	// writes holds, per object, its writes in flight and its last few
	// unmatched ones.
	writes map[ownedObject][]*write
}

type ownedObject struct {
	kind string
	types.NamespacedName
}

// write is one write: made on version from ("" for a create), producing
// version to once it succeeded.
type write struct {
	from, to string
	inFlight bool
	// seen: its event arrived while it was in flight.
	seen bool
}

// keptWrites bounds what is remembered per object: a pass writes an
// AccessKey at most three times and its Secret once, and a write whose
// event was missed is forgotten once newer ones push it out.
const keptWrites = 4

func newOwnWrites() *ownWrites { return &ownWrites{writes: map[ownedObject][]*write{}} }

func objectOf(kind string, o client.Object) ownedObject {
	return ownedObject{kind: kind, NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}
}

// begin records a write of o about to be made on version from.
func (w *ownWrites) begin(kind string, o client.Object, from string) *write {
	wr := &write{from: from, inFlight: true}
	key := objectOf(kind, o)
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := append(w.writes[key], wr)
	if len(kept) > keptWrites {
		kept = kept[len(kept)-keptWrites:]
	}
	w.writes[key] = kept
	return wr
}

// end records how a write begun ended: a failed write and one whose event
// was seen already are forgotten; the others wait for their event.
func (w *ownWrites) end(kind string, o client.Object, wr *write, err error) {
	key := objectOf(kind, o)
	w.mu.Lock()
	defer w.mu.Unlock()
	wr.inFlight, wr.to = false, o.GetResourceVersion()
	if err != nil || wr.seen || wr.to == "" || wr.to == wr.from {
		w.removeLocked(key, wr)
	}
}

func (w *ownWrites) removeLocked(key ownedObject, wr *write) {
	kept := slices.DeleteFunc(w.writes[key], func(other *write) bool { return other == wr })
	if len(kept) == 0 {
		delete(w.writes, key)
		return
	}
	w.writes[key] = kept
}

// record records a write of o that succeeded, made on version from.
func (w *ownWrites) record(kind string, o client.Object, from string) {
	w.end(kind, o, w.begin(kind, o, from), nil)
}

// consume reports whether the change from version from to version to of
// an object is one of exokey's writes, and forgets it.
func (w *ownWrites) consume(kind string, o client.Object, from, to string) bool {
	key := objectOf(kind, o)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wr := range w.writes[key] {
		switch {
		case wr.inFlight && !wr.seen && wr.from == from:
			wr.seen = true
			return true
		case !wr.inFlight && wr.from == from && wr.to == to:
			w.removeLocked(key, wr)
			return true
		}
	}
	return false
}

// forget drops what is remembered of a deleted object.
func (w *ownWrites) forget(kind string, o client.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.writes, objectOf(kind, o))
}

// len is how many objects have writes remembered.
func (w *ownWrites) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

// notOwn passes every event of kind except those of the recorded writes.
func (w *ownWrites) notOwn(kind string) predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			return !w.consume(kind, e.Object, "", e.Object.GetResourceVersion())
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			own := w.consume(kind, e.ObjectNew, e.ObjectOld.GetResourceVersion(), e.ObjectNew.GetResourceVersion())
			return !own && !statusOnly(e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			w.forget(kind, e.Object)
			return true
		},
	}
}

// statusOnly reports whether an AccessKey changed in its status alone.
// Only exokey writes an AccessKey's status (tenants may not:
// docs/guides/tenancy.md), and each pass ends with the next wake of the status it
// wrote, so such a change is never news, even when its event arrives
// before the write is recorded. Anything a tenant can write (spec,
// labels, annotations, finalizers, owners, deletion) is not status.
func statusOnly(oldObj, newObj client.Object) bool {
	o, ok := oldObj.(*iamv1beta1.AccessKey)
	n, ok2 := newObj.(*iamv1beta1.AccessKey)
	if !ok || !ok2 {
		return false
	}
	return o.Generation == n.Generation && o.DeletionTimestamp.Equal(n.DeletionTimestamp) &&
		maps.Equal(o.Labels, n.Labels) && maps.Equal(o.Annotations, n.Annotations) &&
		slices.Equal(o.Finalizers, n.Finalizers) && equality.Semantic.DeepEqual(o.OwnerReferences, n.OwnerReferences)
}

// recordingClient records the AccessKey and Secret writes made through it.
type recordingClient struct {
	client.Client
	own *ownWrites
}

// writtenKind names the kinds whose writes are recorded; "" for others.
func writtenKind(o client.Object) string {
	switch o.(type) {
	case *iamv1beta1.AccessKey:
		return "AccessKey"
	case *corev1.Secret:
		return "Secret"
	}
	return ""
}

// wrote runs write, a write of obj, recording it from before it is sent
// to after it is answered.
func (w *ownWrites) wrote(obj client.Object, write func() error) error {
	kind := writtenKind(obj)
	if kind == "" {
		return write()
	}
	wr := w.begin(kind, obj, obj.GetResourceVersion()) // "" for a create
	err := write()
	w.end(kind, obj, wr, err)
	return err
}

func (c recordingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.own.wrote(obj, func() error { return c.Client.Create(ctx, obj, opts...) })
}

func (c recordingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return c.own.wrote(obj, func() error { return c.Client.Update(ctx, obj, opts...) })
}

func (c recordingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.own.wrote(obj, func() error { return c.Client.Patch(ctx, obj, patch, opts...) })
}

func (c recordingClient) Status() client.SubResourceWriter {
	return recordingStatus{SubResourceWriter: c.Client.Status(), own: c.own}
}

type recordingStatus struct {
	client.SubResourceWriter
	own *ownWrites
}

func (s recordingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.own.wrote(obj, func() error { return s.SubResourceWriter.Update(ctx, obj, opts...) })
}

func (s recordingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	return s.own.wrote(obj, func() error { return s.SubResourceWriter.Patch(ctx, obj, patch, opts...) })
}
