// Command bench measures exokey against its physical floor: convergence of
// N AccessKeys, API calls and Kubernetes writes per minted key, the steady
// state, the manager's memory with many unrelated Secrets, convergence under
// API faults, and rotation at scale. It runs the local control plane, the
// emulator (in-process, with a fixed per-call latency) and the manager
// binary, prints a table and writes bench/results.json.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/exokey/exokey/api/v1alpha1"
	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/localcluster"
)

type options struct {
	sizes       []int
	workers     []int
	apis        []string
	latency     time.Duration
	driftPeriod time.Duration
	secrets     int
	out         string
	managerArgs []string
}

// Convergence is one run: N AccessKeys applied at once.
type Convergence struct {
	API                string             `json:"api"`
	N                  int                `json:"n"`
	Workers            int                `json:"workers"`
	Faults             string             `json:"faults,omitempty"`
	Seconds            float64            `json:"seconds"`
	FloorSeconds       float64            `json:"floorSeconds"`
	TimeRatio          float64            `json:"timeRatio"`
	P50, P95, P99      float64            `json:"-"`
	Percentiles        map[string]float64 `json:"timeToReadySeconds"`
	CallsPerKey        map[string]float64 `json:"callsPerKey"`
	MintCallsPerKey    float64            `json:"mintCallsPerKey"`
	MintCallsFloor     float64            `json:"mintCallsFloor"`
	TotalCalls         int                `json:"totalCalls"`
	SecretWritesPerKey float64            `json:"secretWritesPerKey"`
	StatusWritesPerKey float64            `json:"statusWritesPerKey"`
	MetaWritesPerKey   float64            `json:"metadataWritesPerKey"`
}

// Results is what bench/results.json holds.
type Results struct {
	Settings    map[string]string `json:"settings"`
	Convergence []Convergence     `json:"convergence"`
	Steady      map[string]any    `json:"steadyState"`
	Memory      map[string]any    `json:"memory"`
	Rotation    map[string]any    `json:"rotation"`
	Renewal     map[string]any    `json:"renewal"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

func run() error {
	quick := os.Getenv("BENCH_QUICK") != ""
	sizes, workers, secrets := "100,1000", "1,4,16", 10000
	if quick {
		sizes, workers, secrets = "50", "4", 2000
	}
	var o options
	var apis, extra string
	flag.StringVar(&sizes, "n", sizes, "AccessKey counts, comma-separated")
	flag.StringVar(&workers, "workers", workers, "--max-concurrent-reconciles values, comma-separated")
	flag.StringVar(&apis, "apis", "IAMv3,AccessKeyV2", "issuer APIs")
	flag.DurationVar(&o.latency, "latency", 20*time.Millisecond, "emulator latency per call")
	flag.DurationVar(&o.driftPeriod, "drift-period", 20*time.Second, "drift-check period for the steady-state measure")
	flag.IntVar(&o.secrets, "secrets", secrets, "unrelated Secrets created for the memory measure")
	flag.StringVar(&o.out, "out", "bench/results.json", "results file")
	flag.StringVar(&extra, "manager-args", "", "extra manager flags, space-separated")
	flag.Parse()
	o.sizes, o.workers, o.apis = ints(sizes), ints(workers), strings.Split(apis, ",")
	o.managerArgs = strings.Fields(extra)

	root, _ := os.Getwd()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	workDir := filepath.Join(root, "bench", "work")
	cluster, err := localcluster.Start(root, os.Getenv("KUBEBUILDER_ASSETS"), workDir)
	if err != nil {
		return err
	}
	defer func() { _ = cluster.Stop() }()
	cluster.Config.QPS, cluster.Config.Burst = 500, 1000
	c, err := client.NewWithWatch(cluster.Config, client.Options{Scheme: cluster.Client.Scheme()})
	if err != nil {
		return err
	}

	emu, err := emulator.New(emulator.Options{Faults: emulator.Faults{LatencyMS: int(o.latency / time.Millisecond)}})
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(listener, emu) }()
	endpoint := "http://" + listener.Addr().String() + "/v2"
	if err := setUpIssuers(ctx, c, emu, endpoint); err != nil {
		return err
	}

	b := &bench{o: o, c: c, emu: emu, kubeconfig: cluster.Kubeconfig, root: root, workDir: workDir}
	res := Results{Settings: map[string]string{
		"latency": o.latency.String(), "sizes": sizes, "workers": workers, "apis": apis,
		"driftPeriod": o.driftPeriod.String(), "secrets": strconv.Itoa(o.secrets), "quick": strconv.FormatBool(quick),
		"cpus": strconv.Itoa(runtimeCPUs()),
	}}

	// Convergence, cost per key: a manager per worker count; background
	// drift checks are pushed out of the way (1h) so every call is counted.
	for _, w := range o.workers {
		m, err := b.startManager(w, time.Hour)
		if err != nil {
			return err
		}
		for _, api := range o.apis {
			for _, n := range o.sizes {
				r, err := b.converge(ctx, api, n, w, "")
				if err != nil {
					m.stop()
					return err
				}
				res.Convergence = append(res.Convergence, r)
				printConvergence(r)
			}
		}
		m.stop()
	}

	// Steady state, memory, faults and rotation with the largest settings.
	n, w := o.sizes[len(o.sizes)-1], o.workers[len(o.workers)-1]
	m, err := b.startManager(w, o.driftPeriod)
	if err != nil {
		return err
	}
	defer m.stop()
	if res.Steady, err = b.steady(ctx, n, w); err != nil {
		return err
	}
	if res.Memory, err = b.memory(ctx, m); err != nil {
		return err
	}
	emu.SetFaults(emulator.Faults{LatencyMS: int(o.latency / time.Millisecond), ErrorRate: 0.1, ThrottleRate: 0.05, RetryAfterSeconds: 1})
	faulty, err := b.converge(ctx, "IAMv3", n, w, "10% 503, 5% 429 (Retry-After 1s)")
	emu.SetFaults(emulator.Faults{LatencyMS: int(o.latency / time.Millisecond)})
	if err != nil {
		return err
	}
	res.Convergence = append(res.Convergence, faulty)
	printConvergence(faulty)
	if res.Rotation, err = b.rotate(ctx, faulty.namespace(), n); err != nil {
		return err
	}
	if res.Renewal, err = b.renewals(ctx, m, n, quick); err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(o.out, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nsteady state over one drift period (%s): %v\n", o.driftPeriod, res.Steady)
	fmt.Printf("memory: %v\n", res.Memory)
	fmt.Printf("rotation at scale: %v\n", res.Rotation)
	fmt.Printf("session renewals: %v\n", res.Renewal)
	fmt.Printf("\nresults written to %s\n", o.out)
	return nil
}

func runtimeCPUs() int {
	n, _ := strconv.Atoi(strings.TrimSpace(string(must(exec.Command("nproc").Output()))))
	return n
}

func must(b []byte, _ error) []byte { return b }

type bench struct {
	o          options
	c          client.WithWatch
	emu        *emulator.Server
	kubeconfig string
	root       string
	workDir    string
	runs       int
}

func setUpIssuers(ctx context.Context, c client.Client, emu *emulator.Server, endpoint string) error {
	key, secret := emu.Root()
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "exokey-system"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "exoscale-root", Namespace: "exokey-system"},
			StringData: map[string]string{"EXOSCALE_API_KEY": key, "EXOSCALE_API_SECRET": secret}},
	}
	for _, api := range []iamv1alpha1.IssuerAPI{iamv1alpha1.IssuerAPIIAMv3, iamv1alpha1.IssuerAPIAccessKeyV2} {
		objects = append(objects, &iamv1alpha1.ClusterKeyIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: strings.ToLower(string(api))},
			Spec: iamv1alpha1.ClusterKeyIssuerSpec{IssuerSpec: iamv1alpha1.IssuerSpec{
				API: api, Endpoint: endpoint, KeyNamePrefix: "bench",
				CredentialsRef: iamv1alpha1.CredentialsReference{Name: "exoscale-root", Namespace: "exokey-system"},
				Allowed:        iamv1alpha1.Allowed{Operations: []string{"*"}, Resources: []string{"sos/bucket:*"}},
				Limits:         iamv1alpha1.IssuerLimits{MinSessionTTL: &metav1.Duration{Duration: 30 * time.Second}},
			}},
		})
	}
	for _, obj := range objects {
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

type managerProcess struct {
	cmd     *exec.Cmd
	metrics string
}

func (b *bench) startManager(workers int, drift time.Duration) (*managerProcess, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	metricsAddr := l.Addr().String()
	l.Close()
	log, err := os.Create(filepath.Join(b.workDir, fmt.Sprintf("manager-%d.log", workers)))
	if err != nil {
		return nil, err
	}
	args := append([]string{"--kubeconfig", b.kubeconfig, "--max-concurrent-reconciles", strconv.Itoa(workers),
		"--drift-check-period", drift.String(), "--metrics-bind-address", metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=0", "--exoscale-qps=1000", "--exoscale-burst=1000"}, b.o.managerArgs...)
	cmd := exec.Command(filepath.Join(b.root, "bin", "manager"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bin/manager (run make build): %w", err)
	}
	m := &managerProcess{cmd: cmd, metrics: "http://" + metricsAddr + "/metrics"}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := m.scrape(); err == nil {
			return m, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("the manager's metrics never answered (see %s)", log.Name())
}

func (m *managerProcess) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
}

// scrape reads the manager's metrics as name -> value (first series).
func (m *managerProcess) scrape() (map[string]float64, error) {
	resp, err := http.Get(m.metrics)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	values := map[string]float64{}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[1], 64); err == nil {
			if _, seen := values[fields[0]]; !seen {
				values[fields[0]] = v
			}
		}
	}
	return values, scanner.Err()
}

// writeCounter counts the writes a watch sees in one namespace.
type writeCounter struct {
	secretWrites   atomic.Int64
	akModified     atomic.Int64
	akStatusWrites atomic.Int64
	mu             sync.Mutex
	readyAt        map[string]time.Time
	lastStatus     map[string]string
	lastMeta       map[string]string
}

func (b *bench) watch(ctx context.Context, namespace string) (*writeCounter, error) {
	wc := &writeCounter{readyAt: map[string]time.Time{}, lastStatus: map[string]string{}, lastMeta: map[string]string{}}
	akWatch, err := b.watchFromNow(ctx, namespace, func() client.ObjectList { return &iamv1alpha1.AccessKeyList{} })
	if err != nil {
		return nil, err
	}
	secretWatch, err := b.watchFromNow(ctx, namespace, func() client.ObjectList { return &corev1.SecretList{} })
	if err != nil {
		return nil, err
	}
	go func() {
		for ev := range akWatch.ResultChan() {
			ak, ok := ev.Object.(*iamv1alpha1.AccessKey)
			if !ok || ev.Type == watch.Bookmark {
				continue
			}
			status, _ := json.Marshal(ak.Status)
			metaJSON, _ := json.Marshal([]any{ak.Finalizers, ak.Annotations, ak.Spec})
			wc.mu.Lock()
			if ev.Type == watch.Modified {
				wc.akModified.Add(1)
				if wc.lastStatus[ak.Name] != string(status) {
					wc.akStatusWrites.Add(1)
				}
			}
			wc.lastStatus[ak.Name], wc.lastMeta[ak.Name] = string(status), string(metaJSON)
			if _, done := wc.readyAt[ak.Name]; !done && meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready") {
				wc.readyAt[ak.Name] = time.Now()
			}
			wc.mu.Unlock()
		}
	}()
	go func() {
		for ev := range secretWatch.ResultChan() {
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				wc.secretWrites.Add(1)
			}
		}
	}()
	go func() {
		<-ctx.Done()
		akWatch.Stop()
		secretWatch.Stop()
	}()
	return wc, nil
}

// watchFromNow watches a kind in namespace from its current state on. The
// server closes watches whose reader falls behind a burst; the watch is
// resumed from the last resourceVersion seen, so no write goes uncounted.
func (b *bench) watchFromNow(ctx context.Context, namespace string, newList func() client.ObjectList) (watch.Interface, error) {
	list := newList()
	if err := b.c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	return watchtools.NewRetryWatcherWithContext(ctx, list.GetResourceVersion(), &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return b.c.Watch(ctx, newList(), client.InNamespace(namespace), &client.ListOptions{Raw: &opts})
		},
	})
}

func (wc *writeCounter) ready() int {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return len(wc.readyAt)
}

func (r Convergence) namespace() string {
	return fmt.Sprintf("bench-%s-%d-%d", strings.ToLower(r.API), r.N, r.Workers) + map[bool]string{true: "-faults", false: ""}[r.Faults != ""]
}

func (b *bench) converge(ctx context.Context, api string, n, workers int, faults string) (Convergence, error) {
	r := Convergence{API: api, N: n, Workers: workers, Faults: faults}
	namespace := r.namespace()
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return r, err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	wc, err := b.watch(watchCtx, namespace)
	if err != nil {
		return r, err
	}
	b.emu.ResetStats()
	started := time.Now()
	createdAt, err := b.createAccessKeys(ctx, namespace, n, iamv1alpha1.AccessKeySpec{
		IssuerRef:  iamv1alpha1.IssuerReference{Name: strings.ToLower(api)},
		Operations: []string{"get-sos-object", "put-sos-object"},
		Resources:  []string{"sos/bucket:bench"},
		Rotation:   &iamv1alpha1.RotationSpec{GracePeriod: &metav1.Duration{Duration: 5 * time.Second}},
	})
	if err != nil {
		return r, err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for wc.ready() < n {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%s n=%d workers=%d: only %d of %d Ready after 10 minutes", api, n, workers, wc.ready(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var last time.Time
	var toReady []float64
	wc.mu.Lock()
	for i := range n {
		at := wc.readyAt[fmt.Sprintf("key-%05d", i)]
		toReady = append(toReady, at.Sub(createdAt[i]).Seconds())
		if at.After(last) {
			last = at
		}
	}
	wc.mu.Unlock()
	time.Sleep(time.Second) // let trailing writes, if any, be counted
	sort.Float64s(toReady)
	pct := func(p float64) float64 { return round(toReady[min(len(toReady)-1, int(p*float64(len(toReady))))]) }
	stats := b.emu.Stats()
	mintCalls := map[string]int{"IAMv3": 2, "AccessKeyV2": 1}[api]
	r.Seconds = round(last.Sub(started).Seconds())
	r.FloorSeconds = round(float64(n*mintCalls) * b.o.latency.Seconds() / float64(workers))
	r.TimeRatio = round(r.Seconds / r.FloorSeconds)
	r.P50, r.P95, r.P99 = pct(0.50), pct(0.95), pct(0.99)
	r.Percentiles = map[string]float64{"p50": r.P50, "p95": r.P95, "p99": r.P99}
	r.CallsPerKey = map[string]float64{}
	mint := 0
	for op, count := range stats.Operations {
		r.CallsPerKey[op] = round(float64(count) / float64(n))
		if op == "create-iam-role" || op == "create-api-key" || op == "create-access-key" {
			mint += stats.ByOperationStatus[op+" 200"]
		}
	}
	r.TotalCalls = stats.Total
	r.MintCallsPerKey = round(float64(mint) / float64(n))
	r.MintCallsFloor = float64(mintCalls)
	r.SecretWritesPerKey = round(float64(wc.secretWrites.Load()) / float64(n))
	r.StatusWritesPerKey = round(float64(wc.akStatusWrites.Load()) / float64(n))
	r.MetaWritesPerKey = round(float64(wc.akModified.Load()-wc.akStatusWrites.Load()) / float64(n))
	return r, nil
}

// createAccessKeys creates key-00000... in namespace with spec, 32 at a
// time, and returns when each was created.
func (b *bench) createAccessKeys(ctx context.Context, namespace string, n int, spec iamv1alpha1.AccessKeySpec) ([]time.Time, error) {
	createdAt := make([]time.Time, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			createdAt[i] = time.Now()
			ak := &iamv1alpha1.AccessKey{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("key-%05d", i), Namespace: namespace},
				Spec:       *spec.DeepCopy(),
			}
			if err := b.c.Create(ctx, ak); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return createdAt, <-errs
}

// renewals creates n AccessKeys with session credentials (ttl 90 s,
// renewed 30 s before expiry; 30 s and 10 s in a quick run) and measures
// until each has been renewed once: Exoscale calls and Secret writes per
// renewal, against the floor of one assume-iam-role and one Secret write.
func (b *bench) renewals(ctx context.Context, m *managerProcess, n int, quick bool) (map[string]any, error) {
	ttl, renewBefore := 90*time.Second, 30*time.Second
	if quick {
		ttl, renewBefore = 30*time.Second, 10*time.Second
	}
	namespace := fmt.Sprintf("bench-renew-%d", n)
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return nil, err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	wc, err := b.watch(watchCtx, namespace)
	if err != nil {
		return nil, err
	}
	before, err := m.scrape()
	if err != nil {
		return nil, err
	}
	b.emu.ResetStats()
	started := time.Now()
	if _, err := b.createAccessKeys(ctx, namespace, n, iamv1alpha1.AccessKeySpec{
		IssuerRef:  iamv1alpha1.IssuerReference{Name: "iamv3"},
		Operations: []string{"get-sos-object", "put-sos-object"},
		Resources:  []string{"sos/bucket:bench"},
		TTL:        &metav1.Duration{Duration: ttl},
		Rotation:   &iamv1alpha1.RotationSpec{RenewBefore: &metav1.Duration{Duration: renewBefore}},
	}); err != nil {
		return nil, err
	}
	// Each AccessKey's first credential is the first key it was Ready with.
	first := map[string]string{}
	list := &iamv1alpha1.AccessKeyList{}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		if err := b.c.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, err
		}
		renewed := 0
		for _, ak := range list.Items {
			if ak.Status.KeyID == "" || !meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready") {
				continue
			}
			if _, seen := first[ak.Name]; !seen {
				first[ak.Name] = ak.Status.KeyID
			} else if ak.Status.KeyID != first[ak.Name] {
				renewed++
			}
		}
		if renewed == n {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("renewals: %d of %d renewed after 15 minutes", renewed, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(started)
	time.Sleep(time.Second) // let trailing writes be counted
	after, err := m.scrape()
	if err != nil {
		return nil, err
	}
	series := `exokey_rotations_total{reason="RenewalDue"}`
	renewals := after[series] - before[series]
	stats := b.emu.Stats()
	mints := float64(stats.ByOperationStatus["create-iam-role 200"])
	assumes := float64(stats.ByOperationStatus["assume-iam-role 200"])
	perRenewal := func(v float64) float64 { return round(v / renewals) }
	return map[string]any{
		"accessKeys": n, "ttl": ttl.String(), "renewBefore": renewBefore.String(), "renewals": renewals,
		"secondsUntilEveryKeyRenewed": round(elapsed.Seconds()),
		// A mint is create-iam-role and one assume; every other assume is a renewal.
		"assumeCallsPerRenewal": perRenewal(assumes - mints), "assumeFloor": 1,
		"secretWritesPerRenewal": perRenewal(float64(wc.secretWrites.Load()) - mints), "secretWritesFloor": 1,
		"rolesCreated": mints, "rolesCreatedFloor": n,
		"callsByOperation": stats.Operations,
	}, nil
}

func round(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

var headerPrinted bool

func printConvergence(r Convergence) {
	if !headerPrinted {
		fmt.Printf("%-11s %5s %7s %8s %8s %6s %6s %6s %6s %11s %9s %9s %9s %s\n",
			"api", "n", "workers", "seconds", "floor", "ratio", "p50", "p95", "p99", "mint calls", "secret w", "status w", "meta w", "faults")
		headerPrinted = true
	}
	fmt.Printf("%-11s %5d %7d %8.2f %8.2f %6.2f %6.2f %6.2f %6.2f %5.2f/%-5.0f %9.2f %9.2f %9.2f %s\n",
		r.API, r.N, r.Workers, r.Seconds, r.FloorSeconds, r.TimeRatio, r.P50, r.P95, r.P99,
		r.MintCallsPerKey, r.MintCallsFloor, r.SecretWritesPerKey, r.StatusWritesPerKey, r.MetaWritesPerKey, r.Faults)
}

// steady measures one drift period after convergence, with the manager
// restarted at that period: API calls and writes per key.
func (b *bench) steady(ctx context.Context, n, workers int) (map[string]any, error) {
	namespace := fmt.Sprintf("bench-iamv3-%d-%d", n, workers)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	wc, err := b.watch(watchCtx, namespace)
	if err != nil {
		return nil, err
	}
	// The watch's initial ADDED events are not writes.
	time.Sleep(2 * time.Second)
	wc.secretWrites.Store(0)
	wc.akModified.Store(0)
	wc.akStatusWrites.Store(0)
	b.emu.ResetStats()
	period := b.o.driftPeriod + b.o.driftPeriod/10
	time.Sleep(period)
	stats := b.emu.Stats()
	total := 0
	for _, k := range []string{"get-api-key", "get-access-key"} {
		total += stats.Operations[k]
	}
	// Every AccessKey the bench made is checked, across namespaces.
	list := &iamv1alpha1.AccessKeyList{}
	if err := b.c.List(ctx, list); err != nil {
		return nil, err
	}
	return map[string]any{
		"period": period.String(), "accessKeys": len(list.Items), "lookups": total,
		// The window is a period plus its jitter; the rate is per period.
		"lookupsPerKeyPerPeriod":  round(float64(total) / float64(len(list.Items)) * float64(b.o.driftPeriod) / float64(period)),
		"otherCalls":              stats.Total - total,
		"writesPerKeyInNamespace": round(float64(wc.secretWrites.Load()+wc.akModified.Load()) / float64(n)),
	}, nil
}

// memory compares the manager's memory before and after creating many
// unrelated, unlabelled Secrets.
func (b *bench) memory(ctx context.Context, m *managerProcess) (map[string]any, error) {
	before, err := settle(m)
	if err != nil {
		return nil, err
	}
	const namespaces = 10
	for i := range namespaces {
		if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%d", i)}}); err != nil {
			return nil, err
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	payload := strings.Repeat("x", 512)
	for i := range b.o.secrets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = b.c.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%05d", i), Namespace: fmt.Sprintf("unrelated-%d", i%namespaces)},
				StringData: map[string]string{"data": payload},
			})
		}()
	}
	wg.Wait()
	after, err := settle(m)
	if err != nil {
		return nil, err
	}
	growth := func(k string) float64 { return round(100 * (after[k] - before[k]) / before[k]) }
	return map[string]any{
		"unrelatedSecrets":  b.o.secrets,
		"rssBeforeMiB":      round(before["process_resident_memory_bytes"] / (1 << 20)),
		"rssAfterMiB":       round(after["process_resident_memory_bytes"] / (1 << 20)),
		"rssGrowthPercent":  growth("process_resident_memory_bytes"),
		"heapBeforeMiB":     round(before["go_memstats_heap_inuse_bytes"] / (1 << 20)),
		"heapAfterMiB":      round(after["go_memstats_heap_inuse_bytes"] / (1 << 20)),
		"heapGrowthPercent": growth("go_memstats_heap_inuse_bytes"),
	}, nil
}

// settle waits a little and scrapes the manager's memory figures: the
// smallest of six scrapes over 12 seconds, the nearest to the live heap
// between garbage collections.
func settle(m *managerProcess) (map[string]float64, error) {
	time.Sleep(5 * time.Second)
	var rss, heap []float64
	for range 6 {
		v, err := m.scrape()
		if err != nil {
			return nil, err
		}
		rss, heap = append(rss, v["process_resident_memory_bytes"]), append(heap, v["go_memstats_heap_inuse_bytes"])
		time.Sleep(2 * time.Second)
	}
	sort.Float64s(rss)
	sort.Float64s(heap)
	return map[string]float64{"process_resident_memory_bytes": rss[0], "go_memstats_heap_inuse_bytes": heap[0]}, nil
}

// rotate asks every AccessKey of a namespace to rotate and measures until
// every old key is revoked (grace period 5s).
func (b *bench) rotate(ctx context.Context, namespace string, n int) (map[string]any, error) {
	list := &iamv1alpha1.AccessKeyList{}
	if err := b.c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	old := map[string]string{}
	for _, ak := range list.Items {
		old[ak.Name] = ak.Status.KeyID
	}
	b.emu.ResetStats()
	started := time.Now()
	for _, ak := range list.Items {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got := &iamv1alpha1.AccessKey{}
			if err := b.c.Get(ctx, client.ObjectKeyFromObject(&ak), got); err != nil {
				return err
			}
			if got.Annotations == nil {
				got.Annotations = map[string]string{}
			}
			got.Annotations[iamv1alpha1.RotateAnnotation] = "bench"
			return b.c.Update(ctx, got)
		})
		if err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if err := b.c.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, err
		}
		done := 0
		for _, ak := range list.Items {
			if ak.Status.KeyID != old[ak.Name] && len(ak.Status.Retiring) == 0 {
				done++
			}
		}
		if done == len(list.Items) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("rotation: %d of %d done after 10 minutes", done, len(list.Items))
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(started)
	// Drift checks of every other AccessKey run meanwhile; the calls of a
	// rotation are the creates and deletes, and the async operations polled.
	stats := b.emu.Stats()
	perKey := map[string]float64{}
	rotationCalls := 0
	for _, op := range []string{"create-iam-role", "create-api-key", "delete-api-key", "delete-iam-role", "get-operation"} {
		if count := stats.ByOperationStatus[op+" 200"]; count > 0 {
			perKey[op] = round(float64(count) / float64(n))
			if op != "get-operation" {
				rotationCalls += count
			}
		}
	}
	return map[string]any{
		"accessKeys": n, "gracePeriod": "5s", "secondsUntilAllOldKeysRevoked": round(elapsed.Seconds()),
		"createAndDeleteCallsPerKey": round(float64(rotationCalls) / float64(n)), "floor": 4,
		"successfulCallsPerKey": perKey,
	}, nil
}
