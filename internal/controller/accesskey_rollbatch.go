package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// One roll per workload per change: a workload that consumes several
// AccessKeys rotated together (a rotation schedule they share, an issuer's
// ceiling narrowed under all of them) is rolled once, after the last of
// their Secrets is written, not once per AccessKey. A roll is requested
// with the AccessKey's checksum and made RestartBatchWindow after the first
// request for that workload, with the checksums of every AccessKey that
// asked meanwhile.

// rollBatcher holds the rolls requested and not yet made, by workload.
type rollBatcher struct {
	window time.Duration
	roll   func(ctx context.Context, workload client.Object, stamp string) error
	onDone func(workload client.Object, accessKeys []string, err error)

	mu      sync.Mutex
	pending map[string]*pendingRoll
}

type pendingRoll struct {
	workload client.Object
	// checksums by AccessKey name.
	checksums map[string]string
}

// request asks for a roll of workload onto the AccessKey's checksum. It
// reports whether the workload was rolled now (no window) and the error of
// that roll; otherwise the roll is made within the window.
func (b *rollBatcher) request(ctx context.Context, workload client.Object, accessKey, checksum string) (bool, error) {
	if b.window <= 0 {
		return true, b.roll(ctx, workload, checksum)
	}
	key := workloadKey(workload)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string]*pendingRoll{}
	}
	if p, ok := b.pending[key]; ok {
		p.checksums[accessKey] = checksum
		return false, nil
	}
	b.pending[key] = &pendingRoll{workload: workload, checksums: map[string]string{accessKey: checksum}}
	time.AfterFunc(b.window, func() { b.fire(key) })
	return false, nil
}

// scheduled reports whether a roll of the workload is waiting.
func (b *rollBatcher) scheduled(workload client.Object) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.pending[workloadKey(workload)]
	return ok
}

func (b *rollBatcher) fire(key string) {
	b.mu.Lock()
	p := b.pending[key]
	delete(b.pending, key)
	b.mu.Unlock()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	accessKeys := slices.Sorted(maps.Keys(p.checksums))
	err := b.roll(ctx, p.workload, batchStamp(p.checksums))
	if b.onDone != nil {
		b.onDone(p.workload, accessKeys, err)
	}
}

// batchStamp is the restart annotation of one roll: the AccessKey's
// checksum when one asked, else a digest of every AccessKey's checksum.
func batchStamp(checksums map[string]string) string {
	if len(checksums) == 1 {
		for _, c := range checksums {
			return c
		}
	}
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(checksums)) {
		h.Write([]byte(name + "=" + checksums[name] + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func workloadKey(w client.Object) string {
	return w.GetObjectKind().GroupVersionKind().Kind + "/" + w.GetNamespace() + "/" + w.GetName()
}

// rollNow makes one roll of a workload: the checksum stamped on an apps/v1
// pod template, spec.restartAt on a Rollout.
func (r *AccessKeyReconciler) rollNow(ctx context.Context, workload client.Object, stamp string) error {
	if isRollout(workload) {
		restart, _ := json.Marshal(map[string]any{"spec": map[string]any{"restartAt": r.Clock.Now().UTC().Format(time.RFC3339)}})
		return r.Patch(ctx, workload, client.RawPatch(types.MergePatchType, restart))
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{RestartAnnotation: stamp}},
	}}})
	return r.Patch(ctx, workload, client.RawPatch(types.StrategicMergePatchType, patch))
}

// rolledInBatch reports a batched roll: a log line, an event on the
// workload naming the AccessKeys it was rolled for, and the metric.
func (r *AccessKeyReconciler) rolledInBatch(workload client.Object, accessKeys []string, err error) {
	kind := workload.GetObjectKind().GroupVersionKind().Kind
	log := logf.Log.WithName("restart").WithValues("kind", kind, "namespace", workload.GetNamespace(), "name", workload.GetName())
	if err != nil {
		log.Error(err, "roll onto new keys", "accessKeys", accessKeys)
		if r.Recorder != nil {
			r.Recorder.Eventf(workload, nil, corev1.EventTypeWarning, "RestartFailed", "Restart", "rolling onto the new keys of AccessKeys %s: %v",
				strings.Join(accessKeys, ", "), err)
		}
		return
	}
	log.Info("rolled onto new keys", "accessKeys", accessKeys)
	r.Metrics.restarted(kind)
	if r.Recorder != nil {
		r.Recorder.Eventf(workload, nil, corev1.EventTypeNormal, "Restarted", "Restart", "rolled onto the new keys of AccessKeys %s",
			strings.Join(accessKeys, ", "))
	}
}
