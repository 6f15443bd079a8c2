package controller

import (
	"context"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/inject"
)

// The consumers of an AccessKey are the workloads whose pods the webhook
// injected with it. They are found through a cached index of those pods,
// and rolled on a new key as restart targets are.

// consumerIndex indexes injected pods by namespace/AccessKey.
const consumerIndex = "exokey.consumes"

// InjectedPod is how pods are cached, and the key of PodCache in
// cache.Options.ByObject: metadata only.
func InjectedPod() client.Object {
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	return pod
}

// PodCache caches the opted-in pods only (the webhook's label), and of
// their metadata only the owners and the record of what was injected.
func PodCache() cache.ByObject {
	return cache.ByObject{
		Label: labels.SelectorFromSet(labels.Set{inject.LabelInject: "true"}),
		Transform: func(obj any) (any, error) {
			if pod, ok := obj.(*metav1.PartialObjectMetadata); ok {
				injected, ok := pod.Annotations[inject.AnnotationInjected]
				pod.Labels, pod.Annotations, pod.ManagedFields = nil, nil, nil
				if ok {
					pod.Annotations = map[string]string{inject.AnnotationInjected: injected}
				}
			}
			return obj, nil
		},
	}
}

func indexConsumers(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), InjectedPod(), consumerIndex, func(o client.Object) []string {
		var values []string
		for name := range strings.SplitSeq(o.GetAnnotations()[inject.AnnotationInjected], ",") {
			if name != "" {
				values = append(values, o.GetNamespace()+"/"+name)
			}
		}
		return values
	})
}

// consumers lists the workloads of the AccessKey's namespace whose pods
// were injected with it and whose pod template asks for it: a pod's record
// and owners are tenant-writable, so the workload itself is read and
// judged. At most one Deployment, StatefulSet or DaemonSet per pod owner.
func (r *AccessKeyReconciler) consumers(ctx context.Context, ak *iamv1beta1.AccessKey) []client.Object {
	pods := &metav1.PartialObjectMetadataList{}
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.List(ctx, pods, client.InNamespace(ak.Namespace), client.MatchingFields{consumerIndex: ak.Namespace + "/" + ak.Name}); err != nil {
		logf.FromContext(ctx).Error(err, "list the AccessKey's injected pods")
		return nil
	}
	// The pods of one owner (a ReplicaSet's replicas) lead to one
	// workload: each owner is read once, and each workload judged once.
	owners, seen := map[types.UID]bool{}, map[string]bool{}
	var workloads []client.Object
	for _, pod := range pods.Items {
		owner := metav1.GetControllerOf(&pod)
		if owner == nil || owners[owner.UID] {
			continue // a bare pod is not rolled (nothing would recreate it), and an owner is read once
		}
		owners[owner.UID] = true
		workload := r.workloadOf(ctx, ak.Namespace, owner)
		if workload == nil {
			continue
		}
		key := workload.GetObjectKind().GroupVersionKind().Kind + "/" + workload.GetName()
		if seen[key] {
			continue
		}
		seen[key] = true
		if r.asksFor(ctx, workload, ak.Name) {
			workloads = append(workloads, workload)
		}
	}
	return workloads
}

// workloadOf reads the Deployment, StatefulSet or DaemonSet a pod's
// controller reference leads to (a ReplicaSet's own controller for a
// Deployment's pods), from the API server: workloads are not cached.
func (r *AccessKeyReconciler) workloadOf(ctx context.Context, namespace string, owner *metav1.OwnerReference) client.Object {
	if owner.APIVersion != appsv1.SchemeGroupVersion.String() {
		return nil
	}
	var workload client.Object
	switch owner.Kind {
	case "ReplicaSet":
		rs := &appsv1.ReplicaSet{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner.Name}, rs); err != nil {
			return nil
		}
		controller := metav1.GetControllerOf(rs)
		switch {
		case controller == nil:
			return nil
		case controller.Kind == "Deployment" && controller.APIVersion == appsv1.SchemeGroupVersion.String():
			workload = &appsv1.Deployment{}
		case controller.Kind == RolloutGVK.Kind && controller.APIVersion == RolloutGVK.GroupVersion().String():
			workload = newWorkload(RolloutGVK.Kind)
		default:
			return nil
		}
		owner = controller
	case "StatefulSet":
		workload = &appsv1.StatefulSet{}
	case "DaemonSet":
		workload = &appsv1.DaemonSet{}
	default:
		return nil
	}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner.Name}, workload); err != nil || workload.GetUID() != owner.UID {
		return nil
	}
	if owner.Kind != RolloutGVK.Kind {
		workload.GetObjectKind().SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind(owner.Kind))
	}
	return workload
}

// asksFor reports whether a workload's pods opt in to injection and name
// the AccessKey, in their template or through their ServiceAccount.
func (r *AccessKeyReconciler) asksFor(ctx context.Context, workload client.Object, accessKey string) bool {
	template := templateOf(workload)
	if template == nil || template.Labels[inject.LabelInject] != "true" {
		return false
	}
	names, ok := template.Annotations[inject.AnnotationAccessKeys]
	if !ok {
		sa := &corev1.ServiceAccount{}
		name := template.Spec.ServiceAccountName
		if name == "" {
			name = "default"
		}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: workload.GetNamespace(), Name: name}, sa); err != nil {
			return false
		}
		names = sa.Annotations[inject.AnnotationAccessKeys]
	}
	return slices.ContainsFunc(strings.Split(names, ","), func(n string) bool { return strings.TrimSpace(n) == accessKey })
}

func templateOf(workload client.Object) *corev1.PodTemplateSpec {
	switch w := workload.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template
	case *appsv1.StatefulSet:
		return &w.Spec.Template
	case *appsv1.DaemonSet:
		return &w.Spec.Template
	case *unstructured.Unstructured: // a Rollout
		raw, ok, err := unstructured.NestedMap(w.Object, "spec", "template")
		if !ok || err != nil {
			return nil // a Rollout of a workloadRef: exokey does not follow it
		}
		template := &corev1.PodTemplateSpec{}
		if runtime.DefaultUnstructuredConverter.FromUnstructured(raw, template) != nil {
			return nil
		}
		return template
	}
	return nil
}
