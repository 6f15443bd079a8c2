package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
)

// churn measures a deletion against the creation before it: n AccessKeys
// created and made Ready, then all deleted one by one, until every
// AccessKey is gone and every key revoked at the emulator; then a
// namespace of nsKeys AccessKeys created and deleted whole. The manager's
// memory is sampled throughout, so the peak is the peak of the flood, not
// a figure taken at rest.
func (b *bench) churn(ctx context.Context, m *managerProcess, n, nsKeys, workers int) (map[string]any, error) {
	// An empty manager is one that has served AccessKeys and holds none:
	// the code of minting and publishing is in memory, as it is in any
	// manager that ran a day.
	warmUp := []string{"churn-warm-up"}
	if _, err := b.converge(ctx, trial{api: "IAMv3", n: 20, workers: workers, namespaces: warmUp}); err != nil {
		return nil, err
	}
	if _, err := b.deleteAll(ctx, m, warmUp, 20, false); err != nil {
		return nil, err
	}
	// A heap profile allocates in the manager, and the code that writes it
	// stays resident (about 2 MiB of the binary's pages): written before
	// the empty manager is measured, they are at least in both measures.
	if b.o.heapProfiles {
		if err := m.saveHeap(filepath.Join(b.workDir, "heap-churn-empty.pb.gz")); err != nil {
			return nil, err
		}
	}
	empty, err := settle(m)
	if err != nil {
		return nil, err
	}
	sampler, err := sampleMemory(m)
	if err != nil {
		return nil, err
	}

	namespaces := []string{fmt.Sprintf("churn-%d", n)}
	created, err := b.converge(ctx, trial{api: "IAMv3", n: n, workers: workers, namespaces: namespaces})
	if err != nil {
		return nil, err
	}
	printConvergence(created)
	creationPeak, err := sampler.peak()
	if err != nil {
		return nil, err
	}
	if b.o.heapProfiles {
		// What the profile leaves is garbage until the next collection,
		// which an idle manager may not run for two minutes: the
		// deletion's high-water mark starts at it.
		profile := filepath.Join(b.workDir, fmt.Sprintf("heap-churn-%d.pb.gz", n))
		if err := m.saveHeap(profile); err != nil {
			return nil, err
		}
		fmt.Printf("    the manager's heap with %d AccessKeys just Ready: %s (empty: heap-churn-empty.pb.gz beside it, for pprof -diff_base); the deletion's peak includes what writing it left\n", n, profile)
	}
	if sampler, err = sampleMemory(m); err != nil {
		return nil, err
	}
	deleted, err := b.deleteAll(ctx, m, namespaces, n, false)
	if err != nil {
		return nil, err
	}
	deletionPeak, err := sampler.peak()
	if err != nil {
		return nil, err
	}
	peak := max(creationPeak, deletionPeak)

	namespace := fmt.Sprintf("churn-namespace-%d", nsKeys)
	nsCreated, err := b.converge(ctx, trial{api: "IAMv3", n: nsKeys, workers: workers, namespaces: []string{namespace}})
	if err != nil {
		return nil, err
	}
	nsDeleted, err := b.deleteAll(ctx, m, []string{namespace}, nsKeys, true)
	if err != nil {
		return nil, err
	}

	const rss = "process_resident_memory_bytes"
	perThousand := round((peak - empty[rss]) / (1 << 20) / (float64(n) / 1000))
	out := map[string]any{
		"accessKeys": n, "workers": workers,
		"createSeconds": created.Seconds, "deleteSeconds": deleted.seconds,
		"deleteOverCreate":          round(deleted.seconds / created.Seconds),
		"reconcilesPerCreatedKey":   created.ReconcilesPerKey,
		"createCallsPerKey":         created.CallsPerKey,
		"reconcilesPerDeletedKey":   deleted.reconcilesPerKey,
		"deleteCallsPerKey":         deleted.callsPerKey,
		"deleteAPIServerPerKey":     deleted.apiserverPerKey,
		"rssEmptyMiB":               mib(empty[rss]),
		"rssPeakMiB":                mib(peak),
		"rssPeakPerThousandKeys":    perThousand,
		"namespaceAccessKeys":       nsKeys,
		"namespaceCreateSeconds":    nsCreated.Seconds,
		"namespaceDeleteSeconds":    nsDeleted.seconds,
		"namespaceDeleteOverCreate": round(nsDeleted.seconds / nsCreated.Seconds),
	}
	fmt.Printf("churn: %d created in %.1f s, deleted in %.1f s (%.2fx); a namespace of %d created in %.1f s, deleted in %.1f s (%.2fx)\n",
		n, created.Seconds, deleted.seconds, out["deleteOverCreate"], nsKeys, nsCreated.Seconds, nsDeleted.seconds, out["namespaceDeleteOverCreate"])
	fmt.Printf("       reconciles per key: %.2f created, %.2f deleted; RSS %.1f MiB empty, %.1f MiB at the peak: %.1f MiB per 1000 AccessKeys\n",
		created.ReconcilesPerKey, deleted.reconcilesPerKey, mib(empty[rss]), mib(peak), perThousand)
	return out, nil
}

type deletion struct {
	seconds, reconcilesPerKey float64
	callsPerKey               map[string]float64
	apiserverPerKey           map[string]float64
}

// deleteAll deletes the AccessKeys of namespaces (or the namespaces
// themselves, whole) and waits until none is left and the emulator holds
// no key minted for them.
func (b *bench) deleteAll(ctx context.Context, m *managerProcess, namespaces []string, n int, whole bool) (deletion, error) {
	before, err := m.scrape()
	if err != nil {
		return deletion{}, err
	}
	b.emu.ResetStats()
	started := time.Now()
	if whole {
		for _, ns := range namespaces {
			if err := b.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return deletion{}, err
			}
		}
	} else {
		list := &iamv1beta1.AccessKeyList{}
		for _, ns := range namespaces {
			if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
				return deletion{}, err
			}
			if err := forEach(len(list.Items), func(i int) error {
				return client.IgnoreNotFound(b.c.Delete(ctx, &list.Items[i]))
			}); err != nil {
				return deletion{}, err
			}
		}
	}
	deadline := time.Now().Add(20 * time.Minute)
	for {
		left, keys := 0, b.keysOf(namespaces)
		for _, ns := range namespaces {
			if whole {
				err := b.c.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
				if err == nil {
					left++
				} else if !apierrors.IsNotFound(err) {
					return deletion{}, err
				}
				continue
			}
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(iamv1beta1.GroupVersion.WithKind("AccessKeyList"))
			if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
				return deletion{}, err
			}
			left += len(list.Items)
		}
		if left == 0 && keys == 0 {
			break
		}
		if time.Now().After(deadline) {
			return deletion{}, fmt.Errorf("deletion: %d left and %d keys live after 20 minutes", left, keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d := deletion{seconds: round(time.Since(started).Seconds()), callsPerKey: map[string]float64{}, apiserverPerKey: map[string]float64{}}
	time.Sleep(time.Second) // let trailing reconciles be counted
	after, err := m.scrape()
	if err != nil {
		return deletion{}, err
	}
	delta := func(metric, match string) float64 {
		return (sum(after, metric, match) - sum(before, metric, match)) / float64(n)
	}
	d.reconcilesPerKey = round(delta("controller_runtime_reconcile_total", `controller="accesskey"`))
	for verb := range strings.FieldsSeq("GET LIST POST PUT PATCH DELETE") {
		if v := delta("rest_client_requests_total", `method="`+verb+`"`); v > 0 {
			d.apiserverPerKey[verb] = round(v)
		}
	}
	for op, count := range b.emu.Stats().Operations {
		d.callsPerKey[op] = round(float64(count) / float64(n))
	}
	fmt.Printf("    deleted %d in %.1f s: %.2f reconciles, %v calls and %v apiserver requests per key\n",
		n, d.seconds, d.reconcilesPerKey, d.callsPerKey, d.apiserverPerKey)
	return d, nil
}

// keysOf counts the keys live at the emulator minted for AccessKeys of
// namespaces (their names start with the issuer's prefix and the namespace).
func (b *bench) keysOf(namespaces []string) int {
	n := 0
	for _, key := range b.emu.Keys() {
		for _, ns := range namespaces {
			if strings.HasPrefix(key.Name, "bench-"+ns+"-") {
				n++
			}
		}
	}
	return n
}

// memorySampler follows the manager's resident memory through /proc, so
// the measure itself allocates nothing in the manager (a metrics scrape
// lists every AccessKey): the kernel's high-water mark, reset when
// sampling starts, is the peak, whenever it came.
type memorySampler struct {
	pid int
}

func sampleMemory(m *managerProcess) (*memorySampler, error) {
	s := &memorySampler{pid: m.cmd.Process.Pid}
	// 5 resets the high-water mark of the resident set (proc(5), clear_refs).
	return s, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid), []byte("5"), 0)
}

// peak is the highest resident set size since sampling started, in bytes.
func (s *memorySampler) peak() (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 64)
			return n * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", s.pid)
}
