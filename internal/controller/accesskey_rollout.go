package controller

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// Revoking on evidence: a replaced key whose successor was rolled out to
// consumers waits for them, not for a guess. Each consumer reports, in its
// own status, whether a pod that started before the roll is left: the
// workload controller has seen the roll (observedGeneration) and every
// replica is updated and available. The key is revoked once all have,
// never before minGracePeriod, and at gracePeriod whatever they say.

// rolloutPoll is how often a key waiting for its consumers looks at them:
// workloads are not cached, so this is one GET per consumer.
const rolloutPoll = 2 * time.Second

// rolloutDone reads a consumer and says whether it has finished rolling
// onto the key published at its rolled generation; if not, how far it is.
// A consumer that is gone has nothing left to roll.
func (r *AccessKeyReconciler) rolloutDone(ctx context.Context, ak *iamv1beta1.AccessKey, c iamv1beta1.RolledConsumer) (bool, string, error) {
	workload := newWorkload(c.Kind)
	if workload == nil {
		return true, "", nil
	}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ak.Namespace, Name: c.Name}, workload); isNotFound(err) {
		return true, "", nil
	} else if err != nil {
		return false, "", err
	}
	if workload.GetGeneration() < c.Generation {
		r.rollAgain(ctx, ak, workload, c.Kind)
	}
	done, progress := rolledOut(workload, c.Generation)
	return done, fmt.Sprintf("%s %s: %s", c.Kind, c.Name, progress), nil
}

// rollAgain requests again a roll that has not happened (a batched roll
// this process was to make when it stopped), unless one is waiting.
func (r *AccessKeyReconciler) rollAgain(ctx context.Context, ak *iamv1beta1.AccessKey, workload client.Object, kind string) {
	workload.GetObjectKind().SetGroupVersionKind(workloadGVK(kind))
	if r.rolls.scheduled(workload) {
		return
	}
	// The consumer comes from status, which a tenant may write where the
	// status policy is not installed: roll it only if its pods consume the
	// Secret, as rollTargets checks.
	if !consumesSecret(podSpecOf(workload), secretName(ak)) && !r.asksFor(ctx, workload, ak.Name) {
		return
	}
	current, err := r.getSecret(ctx, ak)
	if err != nil || current == nil || conflictsWith(current, ak) {
		return
	}
	_, _ = r.rolls.request(ctx, workload, ak.Name, current.Annotations[iamv1beta1.ChecksumAnnotation])
}

// rolledOut reports whether a workload at or past generation has no pod
// left from before it, with a word on its progress.
func rolledOut(workload client.Object, generation int64) (bool, string) {
	switch w := workload.(type) {
	case *appsv1.Deployment:
		want := ptr.Deref(w.Spec.Replicas, 1)
		s := w.Status
		if s.ObservedGeneration < generation {
			return false, "the roll is not yet observed"
		}
		// Replicas counts every pod, old and new: equal to the updated
		// ones, nothing from before the roll is left.
		done := s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
		return done, fmt.Sprintf("%d of %d pods updated, %d pods in all, %d available", s.UpdatedReplicas, want, s.Replicas, s.AvailableReplicas)
	case *appsv1.StatefulSet:
		want := ptr.Deref(w.Spec.Replicas, 1)
		s := w.Status
		if s.ObservedGeneration < generation {
			return false, "the roll is not yet observed"
		}
		done := s.UpdatedReplicas == want && s.CurrentRevision == s.UpdateRevision && s.ReadyReplicas == want
		return done, fmt.Sprintf("%d of %d pods updated, %d ready", s.UpdatedReplicas, want, s.ReadyReplicas)
	case *appsv1.DaemonSet:
		s := w.Status
		if s.ObservedGeneration < generation {
			return false, "the roll is not yet observed"
		}
		done := s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled && s.NumberUnavailable == 0
		return done, fmt.Sprintf("%d of %d pods updated, %d available", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberAvailable)
	case *unstructured.Unstructured: // an Argo Rollout, restarted through spec.restartAt
		return rolloutRestarted(w, generation)
	}
	return true, ""
}

// rolloutRestarted reports whether Argo Rollouts has restarted every pod of
// a Rollout since the restartAt the roll set, and is healthy at it: its
// controller sets status.restartedAt once no pod from before is left.
func rolloutRestarted(rollout *unstructured.Unstructured, generation int64) (bool, string) {
	observed, _, _ := unstructured.NestedString(rollout.Object, "status", "observedGeneration")
	if g, err := strconv.ParseInt(observed, 10, 64); err != nil || g < generation {
		return false, "the restart is not yet observed"
	}
	restartAt, _, _ := unstructured.NestedString(rollout.Object, "spec", "restartAt")
	restartedAt, _, _ := unstructured.NestedString(rollout.Object, "status", "restartedAt")
	phase, _, _ := unstructured.NestedString(rollout.Object, "status", "phase")
	want, ok, _ := unstructured.NestedInt64(rollout.Object, "spec", "replicas")
	if !ok {
		want = 1
	}
	updated, _, _ := unstructured.NestedInt64(rollout.Object, "status", "updatedReplicas")
	available, _, _ := unstructured.NestedInt64(rollout.Object, "status", "availableReplicas")
	done := restartAt != "" && restartedAt == restartAt && phase == "Healthy" && updated == want && available == want
	return done, fmt.Sprintf("phase %s, restarted at %s of %s, %d of %d pods updated, %d available",
		cmp.Or(phase, "unknown"), cmp.Or(restartedAt, "never"), restartAt, updated, want, available)
}

// awaitConsumers has the retiring key at index i wait for the consumers its
// successor was rolled out to, from minGracePeriod after now.
func awaitConsumers(ak *iamv1beta1.AccessKey, status *iamv1beta1.AccessKeyStatus, i int, consumers []iamv1beta1.RolledConsumer, now time.Time) {
	if i < 0 || len(consumers) == 0 {
		return
	}
	old := &status.Retiring[i]
	old.Consumers = consumers[:min(len(consumers), 64)]
	after := metav1.NewTime(now.Add(minGraceOf(ak)))
	old.RevokeAfter = &after
	var names []string
	for _, c := range old.Consumers {
		names = append(names, c.Kind+" "+c.Name)
	}
	old.WaitingFor = truncate("rollout of "+strings.Join(names, ", "), 1024)
}

// minGraceOf is spec.rotation.minGracePeriod, or 0.
func minGraceOf(ak *iamv1beta1.AccessKey) time.Duration {
	if ak.Spec.Rotation == nil || ak.Spec.Rotation.MinGracePeriodSeconds == nil {
		return 0
	}
	return iamv1beta1.Seconds(*ak.Spec.Rotation.MinGracePeriodSeconds)
}

// consumersDone looks at a retiring key's consumers: true when every one
// has finished; otherwise what the first unfinished one reports.
func (r *AccessKeyReconciler) consumersDone(ctx context.Context, ak *iamv1beta1.AccessKey, old iamv1beta1.RetiringKey) (bool, string, error) {
	for _, c := range old.Consumers {
		done, progress, err := r.rolloutDone(ctx, ak, c)
		if err != nil || !done {
			return false, progress, err
		}
	}
	return true, "", nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
