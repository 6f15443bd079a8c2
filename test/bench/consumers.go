package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// consumers measures rotation that waits for its consumers: n AccessKeys,
// each consumed by a Deployment of 3 replicas (maxSurge 1, maxUnavailable
// 0) that kube-controller-manager rolls, the bench playing the kubelet (a
// pod is Ready a second after it is created). Every key is rotated at once;
// it reports, for each AccessKey, the time from its new key's publish to
// its old key's revocation (median, max), the rolls per Deployment (its new
// ReplicaSets), and the Exoscale calls per rotation. Before it, a replaced
// key lived its whole gracePeriod (10 m here) whatever its consumers did.
func (b *bench) consumers(ctx context.Context, n int) (map[string]any, error) {
	const namespace = "bench-consumers"
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return nil, err
	}
	m, err := b.startManager(16, time.Minute)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	defer stopKubelet()
	go b.playKubelet(kubeletCtx, namespace, time.Second)

	err = forEach(n, func(i int) error {
		name := fmt.Sprintf("app-%03d", i)
		labels := map[string]string{"app": name}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
						EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}}}},
				},
			},
		}
		if err := b.c.Create(ctx, d); err != nil {
			return err
		}
		return b.c.Create(ctx, &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: iamv1beta1.AccessKeySpec{
				IssuerRef: iamv1beta1.IssuerReference{Name: "iamv3"}, Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:bench"},
				RestartTargets: []iamv1beta1.RestartTarget{{Kind: "Deployment", Name: name}},
				Rotation:       &iamv1beta1.RotationSpec{GracePeriodSeconds: 600},
			},
		})
	})
	if err != nil {
		return nil, err
	}
	if err := b.waitFor(ctx, 10*time.Minute, "every AccessKey Ready and every Deployment rolled out", func() (bool, error) {
		return b.consumersSettled(ctx, namespace, n)
	}); err != nil {
		return nil, err
	}
	replicaSetsBefore, err := b.count(ctx, namespace, &appsv1.ReplicaSetList{})
	if err != nil {
		return nil, err
	}
	aks := &iamv1beta1.AccessKeyList{}
	if err := b.c.List(ctx, aks, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	old := map[string]string{}
	for _, ak := range aks.Items {
		old[ak.Name] = ak.Status.KeyID
	}

	b.emu.ResetStats()
	started := time.Now()
	for _, ak := range aks.Items {
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got := &iamv1beta1.AccessKey{}
			if err := b.c.Get(ctx, client.ObjectKeyFromObject(&ak), got); err != nil {
				return err
			}
			if got.Annotations == nil {
				got.Annotations = map[string]string{}
			}
			got.Annotations[iamv1beta1.RotateAnnotation] = "consumers"
			return b.c.Update(ctx, got)
		}); err != nil {
			return nil, err
		}
	}
	// The old keys' revocations, as the emulator sees them.
	revokedAt := map[string]time.Time{}
	if err := b.waitFor(ctx, 10*time.Minute, "every old key revoked", func() (bool, error) {
		live := map[string]bool{}
		for _, k := range b.emu.Keys() {
			live[k.ID] = true
		}
		for name, id := range old {
			if _, seen := revokedAt[name]; !seen && !live[id] {
				revokedAt[name] = time.Now()
			}
		}
		return len(revokedAt) == len(old), nil
	}); err != nil {
		return nil, err
	}
	elapsed := time.Since(started)
	if err := b.c.List(ctx, aks, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	var publishToRevoke []float64
	for _, ak := range aks.Items {
		if ak.Status.CreatedAt == nil || ak.Status.KeyID == old[ak.Name] {
			return nil, fmt.Errorf("AccessKey %s was not rotated", ak.Name)
		}
		// Status times are whole seconds: the figure is within a second.
		publishToRevoke = append(publishToRevoke, revokedAt[ak.Name].Sub(ak.Status.CreatedAt.Time).Seconds())
	}
	slices.Sort(publishToRevoke)
	replicaSetsAfter, err := b.count(ctx, namespace, &appsv1.ReplicaSetList{})
	if err != nil {
		return nil, err
	}
	stats := b.emu.Stats()
	calls := 0
	for _, op := range []string{"create-iam-role", "create-api-key", "delete-api-key", "delete-iam-role"} {
		calls += stats.ByOperationStatus[op+" 200"]
	}
	return map[string]any{
		"accessKeys": n, "replicasEach": 3, "podReadyAfter": "1s", "gracePeriod": "10m",
		"publishToRevokeSecondsMedian":    round(publishToRevoke[len(publishToRevoke)/2]),
		"publishToRevokeSecondsMax":       round(publishToRevoke[len(publishToRevoke)-1]),
		"secondsUntilAllOldKeysRevoked":   round(elapsed.Seconds()),
		"rollsPerDeployment":              round(float64(replicaSetsAfter-replicaSetsBefore) / float64(n)),
		"createAndDeleteCallsPerRotation": round(float64(calls) / float64(n)), "floor": 4,
		"exoscaleCallsPerRotation": round(float64(stats.Total) / float64(n)),
	}, nil
}

// consumersSettled reports whether n AccessKeys are Ready and their
// Deployments fully rolled out.
func (b *bench) consumersSettled(ctx context.Context, namespace string, n int) (bool, error) {
	aks := &iamv1beta1.AccessKeyList{}
	if err := b.c.List(ctx, aks, client.InNamespace(namespace)); err != nil {
		return false, err
	}
	ready := 0
	for _, ak := range aks.Items {
		for _, c := range ak.Status.Conditions {
			if c.Type == "Ready" && c.Status == metav1.ConditionTrue && ak.Status.Pending.IsZero() {
				ready++
			}
		}
	}
	deployments := &appsv1.DeploymentList{}
	if err := b.c.List(ctx, deployments, client.InNamespace(namespace)); err != nil {
		return false, err
	}
	rolled := 0
	for _, d := range deployments.Items {
		s := d.Status
		if s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == 3 && s.Replicas == 3 && s.AvailableReplicas == 3 &&
			d.Spec.Template.Annotations["iam.exokey.io/secret-checksum"] != "" {
			rolled++
		}
	}
	return ready == n && rolled == n, nil
}

func (b *bench) count(ctx context.Context, namespace string, list client.ObjectList) (int, error) {
	if err := b.c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return 0, err
	}
	return apimeta.LenList(list), nil
}

// waitFor polls done every 200 ms until it is true, or fails after within.
func (b *bench) waitFor(ctx context.Context, within time.Duration, what string, done func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s", what, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// playKubelet marks the pods of a namespace Running and Ready delay after
// they are created, until ctx ends: nothing runs pods here.
func (b *bench) playKubelet(ctx context.Context, namespace string, delay time.Duration) {
	for ctx.Err() == nil {
		pods := &corev1.PodList{}
		if b.c.List(ctx, pods, client.InNamespace(namespace)) == nil {
			_ = forEach(len(pods.Items), func(i int) error {
				pod := &pods.Items[i]
				if !pod.DeletionTimestamp.IsZero() || time.Since(pod.CreationTimestamp.Time) < delay || len(pod.Status.Conditions) > 0 {
					return nil
				}
				now := metav1.Now()
				pod.Status.Phase, pod.Status.StartTime = corev1.PodRunning, &now
				pod.Status.Conditions = []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
					{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
				}
				return b.c.Status().Update(ctx, pod)
			})
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
