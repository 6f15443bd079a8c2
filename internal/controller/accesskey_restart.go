package controller

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// RestartAnnotation on a restart target's pod template carries the checksum
// of the Secret's data: a new value rolls the workload onto the new key.
const RestartAnnotation = "iam.exokey.io/secret-checksum"

// rollTargets stamps the Secret's checksum on the pod template of each
// restart target and of each consumer (a workload whose pods the webhook
// injected with the AccessKey). A target is read first (uncached:
// workloads are not cached) and rolled only if its pods consume the
// Secret, so a rotation cannot be used to restart an unrelated workload. A
// missing or unrelated target is a warning, not a failure: the key is
// published either way. It returns the workloads it rolled, at the
// generation the roll gave each: the old key waits for them.
func (r *AccessKeyReconciler) rollTargets(ctx context.Context, ak *iamv1beta1.AccessKey, checksum string) []iamv1beta1.RolledConsumer {
	var consumers []iamv1beta1.RolledConsumer
	rolled := map[string]bool{}
	for _, target := range ak.Spec.RestartTargets {
		workload := newWorkload(string(target.Kind))
		if workload == nil {
			continue
		}
		workload.SetNamespace(ak.Namespace)
		workload.SetName(target.Name)
		err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(workload), workload)
		if err == nil && !consumesSecret(podSpecOf(workload), secretName(ak)) && !r.asksFor(ctx, workload, ak.Name) {
			r.event(ak, corev1.EventTypeWarning, "RestartTargetUnrelated", "Restart",
				"%s %s does not consume Secret %s: it was not restarted", target.Kind, target.Name, secretName(ak))
			continue
		}
		rolled[string(target.Kind)+"/"+target.Name] = true
		switch {
		case isNotFound(err):
			r.event(ak, corev1.EventTypeWarning, "RestartTargetMissing", "Restart", "%s %s not found: it was not restarted", target.Kind, target.Name)
		case err != nil:
			r.event(ak, corev1.EventTypeWarning, "RestartFailed", "Restart", "%s %s: %v", target.Kind, target.Name, err)
		default:
			if consumer, ok := r.requestRoll(ctx, ak, workload, string(target.Kind), checksum); ok {
				consumers = append(consumers, consumer)
			}
		}
	}
	for _, workload := range r.consumers(ctx, ak) {
		kind := workload.GetObjectKind().GroupVersionKind().Kind
		if rolled[kind+"/"+workload.GetName()] {
			continue
		}
		if consumer, ok := r.requestRoll(ctx, ak, workload, kind, checksum); ok {
			consumers = append(consumers, consumer)
		}
	}
	return consumers
}

// requestRoll rolls a workload onto the AccessKey's new key, at once or
// with the other AccessKeys it consumes (RestartBatchWindow), and returns
// it as a consumer at the generation the roll gives it.
func (r *AccessKeyReconciler) requestRoll(ctx context.Context, ak *iamv1beta1.AccessKey, workload client.Object, kind, checksum string) (iamv1beta1.RolledConsumer, bool) {
	workload.GetObjectKind().SetGroupVersionKind(workloadGVK(kind))
	if template := templateOf(workload); template != nil && !isRollout(workload) && template.Annotations[RestartAnnotation] == checksum {
		// Already rolled onto this key (an adoption after an interruption).
		return iamv1beta1.RolledConsumer{Kind: kind, Name: workload.GetName(), Generation: workload.GetGeneration()}, true
	}
	generation := workload.GetGeneration() + 1 // what the roll makes it
	now, err := r.rolls.request(ctx, workload, ak.Name, checksum)
	if err != nil {
		r.event(ak, corev1.EventTypeWarning, "RestartFailed", "Restart", "%s %s: %v", kind, workload.GetName(), err)
		return iamv1beta1.RolledConsumer{}, false
	}
	if now {
		generation = workload.GetGeneration() // as the patch left it
		logf.FromContext(ctx).Info("rolled a consumer onto the new key", "kind", kind, "name", workload.GetName())
		r.Metrics.restarted(kind)
	} else {
		logf.FromContext(ctx).Info("a roll onto the new key is scheduled", "kind", kind, "name", workload.GetName(), "within", r.RestartBatchWindow)
	}
	return iamv1beta1.RolledConsumer{Kind: kind, Name: workload.GetName(), Generation: generation}, true
}

// workloadGVK is the group, version and kind of a kind exokey rolls.
func workloadGVK(kind string) schema.GroupVersionKind {
	if kind == RolloutGVK.Kind {
		return RolloutGVK
	}
	return appsv1.SchemeGroupVersion.WithKind(kind)
}

// RolloutGVK is Argo Rollouts' Rollout.
var RolloutGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}

// newWorkload returns an empty workload of a kind exokey rolls, or nil. A
// Rollout is read unstructured: exokey does not depend on Argo's types.
func newWorkload(kind string) client.Object {
	switch kind {
	case "Deployment":
		return &appsv1.Deployment{}
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "DaemonSet":
		return &appsv1.DaemonSet{}
	case RolloutGVK.Kind:
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(RolloutGVK)
		return u
	}
	return nil
}

func isRollout(workload client.Object) bool {
	_, ok := workload.(*unstructured.Unstructured)
	return ok
}

func podSpecOf(workload client.Object) *corev1.PodSpec {
	if template := templateOf(workload); template != nil {
		return &template.Spec
	}
	return nil
}

// consumesSecret reports whether pods of spec read the Secret: through a
// volume (plain or projected), envFrom, or an env var's secretKeyRef.
func consumesSecret(spec *corev1.PodSpec, name string) bool {
	if spec == nil {
		return false
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return true
		}
		if v.Projected != nil {
			for _, source := range v.Projected.Sources {
				if source.Secret != nil && source.Secret.Name == name {
					return true
				}
			}
		}
	}
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range containers {
		for _, from := range c.EnvFrom {
			if from.SecretRef != nil && from.SecretRef.Name == name {
				return true
			}
		}
		for _, env := range c.Env {
			if env.ValueFrom != nil && env.ValueFrom.SecretKeyRef != nil && env.ValueFrom.SecretKeyRef.Name == name {
				return true
			}
		}
	}
	return false
}
