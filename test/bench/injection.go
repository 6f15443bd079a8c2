package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/inject"
	"github.com/exokey/exokey/internal/localcluster"
)

// injection measures the pod injection webhook: the latency of pod
// creations through the API server at a steady rate, opted in (through
// the webhook) against not (the API server alone), and the manager's
// memory with n injected pods in its consumer index. The bench plays the
// kubelet: it copies the webhook's Secret into the manager's certificate
// directory.
func (b *bench) injection(ctx context.Context, n int, rate float64) (map[string]any, error) {
	const namespace = "bench-inject"
	hook, err := localcluster.InstallWebhook(ctx, b.c, b.root, "exokey-system", filepath.Join(b.workDir, "webhook-certs"))
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = b.c.Delete(context.Background(), &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: hook.Configuration}})
	}()
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&iamv1beta1.AccessKey{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: namespace}, Spec: iamv1beta1.AccessKeySpec{
			IssuerRef: iamv1beta1.IssuerReference{Name: "iamv3"}, Operations: []string{"get-sos-object"}}},
	} {
		if err := b.c.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go localcluster.MountSecret(syncCtx, b.c, hook.Namespace, hook.Secret, hook.CertDir)

	m, err := b.startManager(4, time.Hour, hook.ManagerFlags()...)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	// Ready once a pod that asks is injected.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pod := benchPod(namespace, "probe", true)
		if err := b.c.Create(ctx, pod); err == nil && len(pod.Spec.Containers[0].EnvFrom) == 1 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the webhook did not inject a pod within 2 minutes (see the manager's log)")
		}
		time.Sleep(500 * time.Millisecond)
	}
	empty, err := settle(m)
	if err != nil {
		return nil, err
	}
	plain, err := b.createPods(ctx, namespace, "plain", min(n, 2000), rate, false)
	if err != nil {
		return nil, err
	}
	injected, err := b.createPods(ctx, namespace, "injected", n, rate, true)
	if err != nil {
		return nil, err
	}
	withPods, err := settle(m)
	if err != nil {
		return nil, err
	}
	const rss = "process_resident_memory_bytes"
	out := map[string]any{
		"pods": n, "ratePerSecond": rate,
		"injectedP50ms": injected[0], "injectedP99ms": injected[1],
		"plainP50ms": plain[0], "plainP99ms": plain[1],
		"rssEmptyMiB": mib(empty[rss]), "rssWithPodsMiB": mib(withPods[rss]),
		"rssPerThousandPodsMiB": round((withPods[rss] - empty[rss]) / (1 << 20) / (float64(n) / 1000)),
	}
	fmt.Printf("injection: %d pods at %.0f a second: p50 %.1f ms, p99 %.1f ms through the webhook; %.1f and %.1f ms without; RSS %.1f MiB per 1000 injected pods\n",
		n, rate, injected[0], injected[1], plain[0], plain[1], out["rssPerThousandPodsMiB"])
	return out, nil
}

func benchPod(namespace, name string, optedIn bool) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	if optedIn {
		pod.Labels = map[string]string{inject.LabelInject: "true"}
		pod.Annotations = map[string]string{inject.AnnotationAccessKeys: "creds"}
	}
	return pod
}

// createPods creates n pods at rate a second, each from its own goroutine
// so a slow answer does not slow the rate, and returns the p50 and p99 of
// their creation's latency in milliseconds.
func (b *bench) createPods(ctx context.Context, namespace, prefix string, n int, rate float64, optedIn bool) ([2]float64, error) {
	latencies := make([]float64, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod := benchPod(namespace, fmt.Sprintf("%s-%05d", prefix, i), optedIn)
			started := time.Now()
			if err := b.c.Create(ctx, pod); err != nil {
				errs <- err
				return
			}
			latencies[i] = float64(time.Since(started).Microseconds()) / 1000
			if optedIn && len(pod.Spec.Containers[0].EnvFrom) != 1 {
				errs <- fmt.Errorf("pod %s was not injected", pod.Name)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return [2]float64{}, err
	}
	sort.Float64s(latencies)
	return [2]float64{round(latencies[n/2]), round(latencies[min(n-1, n*99/100)])}, nil
}
