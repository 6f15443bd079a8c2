package controller

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Events are recorded through client-go's core/v1 broadcaster, whose
// correlator keeps a bounded LRU of recent events (to aggregate repeats and
// filter spam) and writes them one at a time from a queue that drops when
// full. The events.k8s.io broadcaster keeps every event it sent for six
// minutes, to detect series, and sends each from a goroutine of its own: a
// flood of 10,000 AccessKeys left tens of MiB of events in the manager.

// eventCacheSize bounds the events the correlator remembers.
const eventCacheSize = 512

// NewEventBroadcaster is the broadcaster for ctrl.Options.EventBroadcaster.
// The manager runs for the whole life of the process, so the option's
// caveat (a broadcaster that outlives its manager) does not apply.
func NewEventBroadcaster() record.EventBroadcaster {
	return record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheSize}))
}

// NewEventRecorder records exokey's events through the manager's
// broadcaster (NewEventBroadcaster).
func NewEventRecorder(mgr ctrl.Manager) events.EventRecorder {
	return coreRecorder{mgr.GetEventRecorderFor("exokey")} //nolint:staticcheck // bounded memory, see above
}

// coreRecorder records through the core/v1 API, whose recorder takes no
// action and no related object: the action is dropped (the reason says
// what happened) and exokey relates no object.
type coreRecorder struct{ record.EventRecorder }

func (r coreRecorder) Eventf(regarding, _ runtime.Object, eventType, reason, _, note string, args ...any) {
	r.EventRecorder.Eventf(regarding, eventType, reason, note, args...)
}
