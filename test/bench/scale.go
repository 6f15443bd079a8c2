package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

type scaleOptions struct {
	n, namespaces, workers                int
	driftPeriod                           time.Duration
	unrelatedSecrets, unrelatedNamespaces int
	churnNamespace                        int
	latency                               time.Duration
}

// scale is the run of BENCH_SCALE=1: N AccessKeys across many namespaces.
// It measures their convergence beside the reference controller, the
// manager's memory per 1000 AccessKeys (also with many unrelated Secrets
// and namespaces), a restart with every key Ready, and the steady state.
func (b *bench) scale(ctx context.Context, o scaleOptions) (map[string]any, error) {
	namespaces := make([]string, o.namespaces)
	for i := range namespaces {
		namespaces[i] = fmt.Sprintf("scale-%03d", i)
	}
	out := map[string]any{
		"accessKeys": o.n, "namespaces": o.namespaces, "workers": o.workers, "latency": o.latency.String(),
		"driftPeriod": o.driftPeriod.String(),
	}
	fmt.Printf("scale: %d AccessKeys across %d namespaces, %d workers\n", o.n, o.namespaces, o.workers)

	// Churn first, on a manager of its own: its memory is measured from
	// empty, before any other AccessKey exists.
	m, err := b.startManager(o.workers, o.driftPeriod)
	if err != nil {
		return nil, err
	}
	if out["churn"], err = b.churn(ctx, m, o.n, o.churnNamespace, o.workers); err != nil {
		m.stop()
		return nil, err
	}
	m.stop()

	// The reference next, while no manager runs.
	ref, err := b.reference(ctx, trial{api: "IAMv3", n: o.n, workers: o.workers, namespaces: namespaces})
	if err != nil {
		return nil, err
	}
	fmt.Printf("reference controller: %.1f s\n", ref.Seconds)

	m, err = b.startManager(o.workers, o.driftPeriod)
	if err != nil {
		return nil, err
	}
	empty, err := settle(m)
	if err != nil {
		return nil, err
	}
	r, err := b.converge(ctx, trial{api: "IAMv3", n: o.n, workers: o.workers, namespaces: namespaces})
	if err != nil {
		m.stop()
		return nil, err
	}
	r.ReferenceSeconds, r.ReferenceRatio = ref.Seconds, round(r.Seconds/ref.Seconds)
	printConvergence(r)
	out["convergence"], out["reference"] = r, ref

	withKeys, err := settle(m)
	if err != nil {
		m.stop()
		return nil, err
	}
	if err := b.unrelated(ctx, o.unrelatedNamespaces, o.unrelatedSecrets); err != nil {
		m.stop()
		return nil, err
	}
	withUnrelated, err := settle(m)
	m.stop()
	if err != nil {
		return nil, err
	}
	perThousand := func(v map[string]float64, k string) float64 {
		return round((v[k] - empty[k]) / (1 << 20) / (float64(o.n) / 1000))
	}
	const rss, heap = "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes"
	memory := map[string]any{
		"rssEmptyMiB": mib(empty[rss]), "heapEmptyMiB": mib(empty[heap]),
		"rssWithKeysMiB": mib(withKeys[rss]), "heapWithKeysMiB": mib(withKeys[heap]),
		"rssPerThousandKeysMiB": perThousand(withKeys, rss), "heapPerThousandKeysMiB": perThousand(withKeys, heap),
		"unrelatedSecrets": o.unrelatedSecrets, "unrelatedNamespaces": o.unrelatedNamespaces,
		"rssWithUnrelatedMiB": mib(withUnrelated[rss]), "heapWithUnrelatedMiB": mib(withUnrelated[heap]),
		"rssPerThousandKeysWithUnrelatedMiB": perThousand(withUnrelated, rss),
	}
	out["memory"] = memory
	fmt.Printf("memory: %v\n", memory)

	restart, m, err := b.restart(ctx, o)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	out["restart"] = restart
	fmt.Printf("restart: %v\n", restart)
	restarted, err := settle(m)
	if err != nil {
		return nil, err
	}
	memory["rssAfterRestartMiB"], memory["rssPerThousandKeysAfterRestartMiB"] = mib(restarted[rss]), perThousand(restarted, rss)

	steady, err := b.steadyAtScale(ctx, m, o)
	if err != nil {
		return nil, err
	}
	out["steady"] = steady
	fmt.Printf("steady state: %v\n", steady)
	return out, nil
}

func mib(v float64) float64 { return round(v / (1 << 20)) }

// unrelated creates namespaces and Secrets exokey has nothing to do with.
func (b *bench) unrelated(ctx context.Context, namespaces, secrets int) error {
	if err := forEach(namespaces, func(i int) error {
		return client.IgnoreAlreadyExists(b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-ns-%04d", i)}}))
	}); err != nil {
		return err
	}
	payload := strings.Repeat("x", 512)
	return forEach(secrets, func(i int) error {
		return client.IgnoreAlreadyExists(b.c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%05d", i), Namespace: fmt.Sprintf("unrelated-ns-%04d", i%namespaces)},
			StringData: map[string]string{"data": payload},
		}))
	})
}

// restart starts a new manager over N Ready AccessKeys and follows it for
// one drift period (plus its jitter): the time until it has reconciled
// each once, the Kubernetes writes and key creates it makes (floor: 0),
// and its lookups per minute against an even spread of N per period.
func (b *bench) restart(ctx context.Context, o scaleOptions) (map[string]any, *managerProcess, error) {
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	wc, err := b.watch(watchCtx, "")
	if err != nil {
		return nil, nil, err
	}
	b.emu.ResetStats()
	m, err := b.startManager(o.workers, o.driftPeriod)
	if err != nil {
		return nil, nil, err
	}
	caughtUp, err := b.caughtUp(ctx, m)
	if err != nil {
		return nil, m, err
	}
	// Lookups in each 10 s step, over the period and its jitter.
	window := o.driftPeriod + o.driftPeriod/10
	step := 10 * time.Second
	var steps []int
	previous := 0
	for elapsed := time.Since(m.started); elapsed < window; elapsed = time.Since(m.started) {
		time.Sleep(min(step, window-elapsed))
		lookups := lookupsOf(b.emu.Stats().Operations)
		steps = append(steps, lookups-previous)
		previous = lookups
	}
	perMinute := int(time.Minute / step)
	busiest := 0
	for i := range steps {
		inMinute := 0
		for _, n := range steps[i:min(len(steps), i+perMinute)] {
			inMinute += n
		}
		busiest = max(busiest, inMinute)
	}
	stats := b.emu.Stats()
	creates := 0
	for op, n := range stats.Operations {
		if strings.HasPrefix(op, "create-") {
			creates += n
		}
	}
	even := float64(o.n) / o.driftPeriod.Minutes()
	return map[string]any{
		"secondsUntilCaughtUp": round(caughtUp.Seconds()),
		"window":               window.String(),
		"kubernetesWrites":     wc.secretWrites.Load() + wc.akModified.Load(),
		"creates":              creates,
		"lookups":              previous,
		"busiestMinuteLookups": busiest,
		"evenLookupsPerMinute": round(even),
		"busiestMinuteRatio":   round(float64(busiest) / even),
		"callsByOperation":     stats.Operations,
	}, m, nil
}

func lookupsOf(operations map[string]int) int {
	return operations["get-api-key"] + operations["get-access-key"] + operations["get-iam-role"]
}

// steadyAtScale follows the restarted manager for one more drift period:
// lookups per key per period and the requests it makes to the apiserver
// per minute (its client-go metrics).
func (b *bench) steadyAtScale(ctx context.Context, m *managerProcess, o scaleOptions) (map[string]any, error) {
	before, err := m.scrape()
	if err != nil {
		return nil, err
	}
	b.emu.ResetStats()
	started := time.Now()
	time.Sleep(o.driftPeriod)
	after, err := m.scrape()
	if err != nil {
		return nil, err
	}
	minutes := time.Since(started).Minutes()
	stats := b.emu.Stats()
	requests := sum(after, "rest_client_requests_total", "") - sum(before, "rest_client_requests_total", "")
	byMethod := map[string]float64{}
	for _, method := range []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"} {
		match := `method="` + method + `"`
		if v := sum(after, "rest_client_requests_total", match) - sum(before, "rest_client_requests_total", match); v > 0 {
			byMethod[method] = round(v / minutes)
		}
	}
	issuers := &iamv1beta1.ClusterKeyIssuerList{}
	if err := b.c.List(ctx, issuers); err != nil {
		return nil, err
	}
	return map[string]any{
		"period":                     o.driftPeriod.String(),
		"callsByOperation":           stats.Operations,
		"callsPerIssuerPerPeriod":    round(float64(stats.Total) / float64(len(issuers.Items)) * o.driftPeriod.Minutes() / minutes),
		"lookupsPerKeyPerPeriod":     round(float64(lookupsOf(stats.Operations)) / float64(o.n) * o.driftPeriod.Minutes() / minutes),
		"otherCalls":                 stats.Total - lookupsOf(stats.Operations),
		"apiserverRequestsPerMinute": round(requests / minutes),
		"apiserverRequestsByMethod":  byMethod,
	}, ctx.Err()
}
