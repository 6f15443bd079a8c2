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
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
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
	// managerBinary is the manager the bench runs (bin/manager).
	managerBinary string
	// profile names the emulator profile of the realistic rows ("none":
	// no such rows); profileWorkers are their worker counts.
	profile        string
	profileWorkers []int
	// heapProfiles asks the churn phase for the manager's heap profiles.
	heapProfiles bool
}

// Convergence is one run: N AccessKeys applied at once.
type Convergence struct {
	API     string `json:"api"`
	N       int    `json:"n"`
	Workers int    `json:"workers"`
	Faults  string `json:"faults,omitempty"`
	// Profile is the emulator profile of the run, e.g. "realistic".
	Profile      string  `json:"profile,omitempty"`
	Seconds      float64 `json:"seconds"`
	FloorSeconds float64 `json:"floorSeconds"`
	TimeRatio    float64 `json:"timeRatio"`
	// ReferenceSeconds is the reference controller's time for the same
	// run, and ReferenceRatio exokey's time over it.
	ReferenceSeconds float64 `json:"referenceSeconds,omitempty"`
	ReferenceRatio   float64 `json:"referenceRatio,omitempty"`
	// Reference marks a row of the reference controller.
	Reference          bool               `json:"reference,omitempty"`
	P50, P95, P99      float64            `json:"-"`
	Percentiles        map[string]float64 `json:"timeToReadySeconds"`
	CallsPerKey        map[string]float64 `json:"callsPerKey"`
	MintCallsPerKey    float64            `json:"mintCallsPerKey"`
	MintCallsFloor     float64            `json:"mintCallsFloor"`
	TotalCalls         int                `json:"totalCalls"`
	SecretWritesPerKey float64            `json:"secretWritesPerKey"`
	StatusWritesPerKey float64            `json:"statusWritesPerKey"`
	MetaWritesPerKey   float64            `json:"metadataWritesPerKey"`
	// NotReady counts the Ready=False reasons the AccessKeys went through.
	NotReady map[string]int `json:"notReadyReasons,omitempty"`
	// ReconcilesPerKey and APIServerRequestsPerKey are the manager's
	// reconciles and requests to the apiserver (by verb) per AccessKey.
	ReconcilesPerKey        float64            `json:"reconcilesPerKey,omitempty"`
	APIServerRequestsPerKey map[string]float64 `json:"apiserverRequestsPerKey,omitempty"`
	// CPUSeconds is the CPU time each process used during the run.
	CPUSeconds map[string]float64 `json:"cpuSeconds,omitempty"`
}

// Results is what bench/results.json holds.
type Results struct {
	Settings    map[string]string `json:"settings"`
	Convergence []Convergence     `json:"convergence"`
	Steady      map[string]any    `json:"steadyState"`
	Drift       map[string]any    `json:"drift,omitempty"`
	Memory      map[string]any    `json:"memory"`
	Rotation    map[string]any    `json:"rotation"`
	Renewal     map[string]any    `json:"renewal"`
	Churn       map[string]any    `json:"churn,omitempty"`
	Injection   map[string]any    `json:"injection,omitempty"`
	Consumers   map[string]any    `json:"rotationWithConsumers,omitempty"`
	Scale       map[string]any    `json:"scale,omitempty"`
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
	crlog.SetLogger(logr.Discard()) // the reference controller's cache logs nothing worth printing
	quick := os.Getenv("BENCH_QUICK") != ""
	scale := os.Getenv("BENCH_SCALE") != ""
	if os.Getenv("BENCH_DEBUG") != "" {
		debugWrites.Store(6)
	}
	sizes, workers, secrets := "100,1000", "1,4,16", 10000
	if quick {
		sizes, workers, secrets = "50", "4", 2000
	}
	var o options
	var apis, extra, profileWorkers string
	flag.StringVar(&sizes, "n", sizes, "AccessKey counts, comma-separated")
	flag.StringVar(&workers, "workers", workers, "--max-concurrent-reconciles values, comma-separated")
	flag.StringVar(&apis, "apis", "IAMv3,AccessKeyV2", "issuer APIs")
	flag.DurationVar(&o.latency, "latency", 20*time.Millisecond, "emulator latency per call")
	flag.DurationVar(&o.driftPeriod, "drift-period", time.Minute, "drift-check period of the steady-state and drift measures (the manager's default)")
	flag.IntVar(&o.secrets, "secrets", secrets, "unrelated Secrets created for the memory measure")
	flag.StringVar(&o.out, "out", "bench/results.json", "results file")
	flag.StringVar(&extra, "manager-args", "", "extra manager flags, space-separated")
	flag.StringVar(&o.managerBinary, "manager", filepath.Join("bin", "manager"), "the manager binary (another build, to compare)")
	flag.StringVar(&o.profile, "profile", "realistic", "emulator profile of the realistic rows (none: no such rows)")
	flag.StringVar(&profileWorkers, "profile-workers", "4,16", "worker counts of the realistic rows")
	flag.BoolVar(&o.heapProfiles, "heap-profiles", false, "write the manager's heap profiles in the churn phase, empty and with every AccessKey Ready (writing them allocates in the manager, and what they leave counts in its peak)")
	var phases string
	flag.StringVar(&phases, "phases", strings.Join(allPhases, ","), "phases to run, comma-separated: "+strings.Join(allPhases, ", "))
	var sc scaleOptions
	flag.IntVar(&sc.n, "scale-n", 10000, "AccessKeys of the scale run (BENCH_SCALE=1)")
	flag.IntVar(&sc.namespaces, "scale-namespaces", 100, "namespaces they are spread over")
	flag.IntVar(&sc.workers, "scale-workers", 16, "--max-concurrent-reconciles of the scale run")
	flag.DurationVar(&sc.driftPeriod, "scale-drift-period", time.Minute, "drift-check period of the scale run's restart and steady state")
	flag.IntVar(&sc.unrelatedSecrets, "scale-secrets", 10000, "unrelated Secrets of the scale run's memory measure")
	flag.IntVar(&sc.churnNamespace, "scale-churn-namespace", 500, "AccessKeys of the scale run's namespace deletion")
	flag.IntVar(&sc.unrelatedNamespaces, "scale-unrelated-namespaces", 1000, "unrelated namespaces of the scale run's memory measure")
	flag.Parse()
	o.sizes, o.workers, o.apis = ints(sizes), ints(workers), strings.Split(apis, ",")
	o.profileWorkers = ints(profileWorkers)
	runs := map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		if p = strings.TrimSpace(p); !slices.Contains(allPhases, p) {
			return fmt.Errorf("unknown phase %q: want some of %s", p, strings.Join(allPhases, ", "))
		}
		runs[p] = true
	}
	if runs["rotation"] && !runs["faults"] {
		return fmt.Errorf("the rotation phase rotates the keys of the faults phase: add faults to -phases")
	}
	o.managerArgs = strings.Fields(extra)
	profile, err := emulator.Profile(o.profile)
	if err != nil {
		return err
	}

	root, _ := os.Getwd()
	// An interrupted bench still stops its control plane and manager.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		if b := current.Load(); b != nil && b.manager != nil {
			b.manager.stop()
		}
	}()
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

	flat := emulator.Faults{LatencyMS: int(o.latency / time.Millisecond)}
	emu, err := emulator.New(emulator.Options{Faults: flat})
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

	b := &bench{o: o, c: c, config: cluster.Config, emu: emu, kubeconfig: cluster.Kubeconfig, root: root, workDir: workDir, endpoint: endpoint}
	current.Store(b)
	res := Results{Settings: map[string]string{
		"latency": o.latency.String(), "sizes": sizes, "workers": workers, "apis": apis,
		"driftPeriod": o.driftPeriod.String(), "secrets": strconv.Itoa(o.secrets), "quick": strconv.FormatBool(quick),
		"profile": o.profile, "profileWorkers": profileWorkers, "cpus": strconv.Itoa(runtimeCPUs()),
	}}
	if scale {
		sc.latency = o.latency
		if err := cluster.StartControllerManager("garbagecollector", "namespace"); err != nil {
			return err
		}
		if res.Scale, err = b.scale(ctx, sc); err != nil {
			return err
		}
		return writeResults(o.out, func(r *Results) { r.Scale = res.Scale })
	}

	// Convergence and cost per key, beside the reference controller: for
	// each worker count, the reference's rows first (no manager runs then),
	// then a manager's. Background drift checks are pushed out of the way
	// (1h) so every call is counted.
	if runs["flat"] {
		for _, w := range o.workers {
			if err := b.compare(ctx, &res, w, "", nil); err != nil {
				return err
			}
		}
	}
	// The same under a cloud that behaves like one: the manager's request
	// rate is set just under the emulator's per-key rate.
	if o.profile != "none" && runs["realistic"] {
		emu.SetFaults(profile)
		qps := 0.95 * profile.KeyRate
		for _, w := range o.profileWorkers {
			if err := b.compare(ctx, &res, w, o.profile, []string{"--exoscale-qps=" + strconv.FormatFloat(qps, 'f', 1, 64), "--exoscale-burst=5"}); err != nil {
				return err
			}
		}
		emu.SetFaults(flat)
	}

	// Steady state, memory, faults and rotation with the largest settings.
	n, w := o.sizes[len(o.sizes)-1], o.workers[len(o.workers)-1]
	m, err := b.startManager(w, o.driftPeriod)
	if err != nil {
		return err
	}
	defer m.stop()
	if runs["steady"] {
		if res.Steady, err = b.steady(ctx, n, w); err != nil {
			return err
		}
	}
	if runs["drift"] {
		if res.Drift, err = b.driftCorrection(ctx, fmt.Sprintf("bench-iamv3-%d-%d", n, w), 10); err != nil {
			return err
		}
	}
	if runs["memory"] {
		if res.Memory, err = b.memory(ctx, m); err != nil {
			return err
		}
	}
	if runs["faults"] {
		emu.SetFaults(emulator.Faults{LatencyMS: flat.LatencyMS, ErrorRate: 0.1, ThrottleRate: 0.05, RetryAfterSeconds: 1})
		faulty, err := b.converge(ctx, trial{api: "IAMv3", n: n, workers: w, faults: "10% 503, 5% 429 (Retry-After 1s)"})
		emu.SetFaults(flat)
		if err != nil {
			return err
		}
		res.Convergence = append(res.Convergence, faulty)
		printConvergence(faulty)
		if runs["rotation"] {
			if res.Rotation, err = b.rotate(ctx, faulty.namespace(), n); err != nil {
				return err
			}
		}
	}
	if runs["renewals"] {
		if res.Renewal, err = b.renewals(ctx, m, n, quick); err != nil {
			return err
		}
	}

	// One kube-controller-manager for the phases that need one: garbage
	// collection and namespaces for churn, Deployments for consumers.
	var controllersStarted bool
	startControllers := func() error {
		if controllersStarted {
			return nil
		}
		controllersStarted = true
		return cluster.StartControllerManager("garbagecollector", "namespace", "deployment", "replicaset")
	}
	if runs["churn"] {
		if err := startControllers(); err != nil {
			return err
		}
		if res.Churn, err = b.churn(ctx, m, n, min(n/2, 500), w); err != nil {
			return err
		}
	}

	if runs["injection"] {
		m.stop() // the injection phase runs a manager of its own, with the webhook
		pods := 10000
		if quick {
			pods = 500
		}
		if res.Injection, err = b.injection(ctx, pods, 100); err != nil {
			return err
		}
	}

	if runs["consumers"] {
		if m != nil {
			m.stop()
		}
		if err := startControllers(); err != nil {
			return err
		}
		consumers := 100
		if quick {
			consumers = 20
		}
		if res.Consumers, err = b.consumers(ctx, consumers); err != nil {
			return err
		}
		fmt.Printf("rotation with consumers: %v\n", res.Consumers)
	}

	fmt.Printf("\nsteady state over one drift period (%s): %v\n", o.driftPeriod, res.Steady)
	fmt.Printf("drift: %v\n", res.Drift)
	fmt.Printf("memory: %v\n", res.Memory)
	fmt.Printf("rotation at scale: %v\n", res.Rotation)
	fmt.Printf("session renewals: %v\n", res.Renewal)
	fmt.Printf("churn: %v\n", res.Churn)
	fmt.Printf("injection: %v\n", res.Injection)
	return writeResults(o.out, func(r *Results) { scale := r.Scale; *r = res; r.Scale = scale })
}

// allPhases are the default run's phases, in the order they run; rotation
// rotates the keys of the faults phase.
var allPhases = []string{"flat", "realistic", "steady", "drift", "memory", "faults", "rotation", "renewals", "churn", "injection", "consumers"}

// current is the running bench, for the interrupt handler.
var current atomic.Pointer[bench]

// compare runs every API and size with w workers: the reference controller
// first, then exokey's manager (started with args), and prints each of
// exokey's rows with its ratio to the reference.
func (b *bench) compare(ctx context.Context, res *Results, w int, profile string, args []string) error {
	sizes := b.o.sizes
	if profile != "" {
		sizes = sizes[len(sizes)-1:]
	}
	refs := map[string]Convergence{}
	for _, api := range b.o.apis {
		for _, n := range sizes {
			ref, err := b.reference(ctx, trial{api: api, n: n, workers: w, profile: profile})
			if err != nil {
				return err
			}
			refs[fmt.Sprint(api, n)] = ref
		}
	}
	m, err := b.startManager(w, time.Hour, args...)
	if err != nil {
		return err
	}
	defer m.stop()
	if _, err := b.caughtUp(ctx, m); err != nil {
		return err
	}
	// The manager checks its issuers once at start; let it, so the first
	// AccessKeys do not wait for that.
	time.Sleep(5 * time.Second)
	for _, api := range b.o.apis {
		for _, n := range sizes {
			r, err := b.converge(ctx, trial{api: api, n: n, workers: w, profile: profile})
			if err != nil {
				return err
			}
			ref := refs[fmt.Sprint(api, n)]
			r.ReferenceSeconds, r.ReferenceRatio = ref.Seconds, round(r.Seconds/ref.Seconds)
			res.Convergence = append(res.Convergence, r, ref)
			printConvergence(r)
		}
	}
	return nil
}

// writeResults updates the results file with set: a scale run keeps the
// default run's results and the other way round.
func writeResults(path string, set func(*Results)) error {
	var r Results
	if raw, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(raw, &r)
	}
	set(&r)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults written to %s\n", path)
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
	config     *rest.Config
	manager    *managerProcess // the running manager, if any
	emu        *emulator.Server
	kubeconfig string
	root       string
	workDir    string
	endpoint   string
	runs       int
}

func setUpIssuers(ctx context.Context, c client.Client, emu *emulator.Server, endpoint string) error {
	key, secret := emu.Root()
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "exokey-system"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "exoscale-root", Namespace: "exokey-system"},
			StringData: map[string]string{"EXOSCALE_API_KEY": key, "EXOSCALE_API_SECRET": secret}},
	}
	for _, api := range []iamv1beta1.IssuerAPI{iamv1beta1.IssuerAPIIAMv3, iamv1beta1.IssuerAPIAccessKeyV2} {
		objects = append(objects, &iamv1beta1.ClusterKeyIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: strings.ToLower(string(api))},
			Spec: iamv1beta1.ClusterKeyIssuerSpec{IssuerSpec: iamv1beta1.IssuerSpec{
				API: api, Endpoint: endpoint, KeyNamePrefix: "bench",
				CredentialsRef: iamv1beta1.CredentialsReference{Name: "exoscale-root", Namespace: "exokey-system"},
				Allowed:        iamv1beta1.Allowed{Operations: []string{"*"}, Resources: []string{"sos/bucket:*"}},
				Limits:         iamv1beta1.IssuerLimits{MinSessionTTLSeconds: ptr.To[int64](30)},
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
	// pprof is the base URL of the manager's pprof endpoints.
	pprof   string
	started time.Time
}

func (b *bench) startManager(workers int, drift time.Duration, extra ...string) (*managerProcess, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	metricsAddr := l.Addr().String()
	l.Close()
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pprofAddr := l.Addr().String()
	l.Close()
	log, err := os.Create(filepath.Join(b.workDir, fmt.Sprintf("manager-%d.log", workers)))
	if err != nil {
		return nil, err
	}
	args := append([]string{"--kubeconfig", b.kubeconfig, "--max-concurrent-reconciles", strconv.Itoa(workers),
		"--drift-check-period", drift.String(), "--metrics-bind-address", metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=0", "--exoscale-qps=1000", "--exoscale-burst=1000",
		"--pprof-bind-address", pprofAddr}, append(extra, b.o.managerArgs...)...)
	binary := b.o.managerBinary
	if !filepath.IsAbs(binary) {
		binary = filepath.Join(b.root, binary)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run make build): %w", binary, err)
	}
	m := &managerProcess{cmd: cmd, metrics: "http://" + metricsAddr + "/metrics", pprof: "http://" + pprofAddr + "/debug/pprof", started: time.Now()}
	b.manager = m
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := m.scrape(); err == nil {
			return m, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("the manager's metrics never answered (see %s)", log.Name())
}

// saveHeap writes the manager's heap profile to path, for go tool pprof.
func (m *managerProcess) saveHeap(path string) error {
	resp, err := http.Get(m.pprof + "/heap")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
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
	notReady       map[string]int // Ready=False reasons seen, by reason
	lastStatus     map[string]string
	lastMeta       map[string]string
	writesOf       map[string]int
}

func (b *bench) watch(ctx context.Context, namespace string) (*writeCounter, error) {
	wc := &writeCounter{readyAt: map[string]time.Time{}, notReady: map[string]int{}, lastStatus: map[string]string{}, lastMeta: map[string]string{}}
	akWatch, err := b.watchFromNow(ctx, namespace, func() client.ObjectList { return &iamv1beta1.AccessKeyList{} })
	if err != nil {
		return nil, err
	}
	secretWatch, err := b.watchFromNow(ctx, namespace, func() client.ObjectList { return &corev1.SecretList{} })
	if err != nil {
		return nil, err
	}
	go func() {
		for ev := range akWatch.ResultChan() {
			ak, ok := ev.Object.(*iamv1beta1.AccessKey)
			if !ok || ev.Type == watch.Bookmark {
				continue
			}
			name := ak.Namespace + "/" + ak.Name
			status, _ := json.Marshal(ak.Status)
			metaJSON, _ := json.Marshal([]any{ak.Finalizers, ak.Annotations, ak.Spec})
			wc.mu.Lock()
			if ev.Type == watch.Modified {
				wc.akModified.Add(1)
				if wc.lastStatus[name] != string(status) {
					wc.akStatusWrites.Add(1)
					if n := wc.statusWrites(name); n > 2 && debugWrites.Add(-1) >= 0 {
						fmt.Printf("    status write %d of %s:\n      was %s\n      now %s\n", n, name, wc.lastStatus[name], status)
					}
				}
			}
			wc.lastStatus[name], wc.lastMeta[name] = string(status), string(metaJSON)
			if c := meta.FindStatusCondition(ak.Status.Conditions, "Ready"); c != nil && c.Status == metav1.ConditionFalse {
				wc.notReady[c.Reason]++
			}
			if _, done := wc.readyAt[name]; !done && meta.IsStatusConditionTrue(ak.Status.Conditions, "Ready") {
				wc.readyAt[name] = time.Now()
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

// debugWrites is how many more status writes beyond an AccessKey's second
// BENCH_DEBUG prints.
var debugWrites atomic.Int64

// statusWrites counts name's status writes; called with wc.mu held.
func (wc *writeCounter) statusWrites(name string) int {
	if wc.writesOf == nil {
		wc.writesOf = map[string]int{}
	}
	wc.writesOf[name]++
	return wc.writesOf[name]
}

func (wc *writeCounter) ready() int {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return len(wc.readyAt)
}

// A trial is N AccessKeys applied at once, spread over namespaces, and
// converged by exokey's manager or by the reference controller.
type trial struct {
	api        string
	n, workers int
	faults     string // injected faults, described
	profile    string // emulator profile
	reference  bool
	namespaces []string // one named after the run when empty
}

func (r trial) row() Convergence {
	return Convergence{API: r.api, N: r.n, Workers: r.workers, Faults: r.faults, Profile: r.profile, Reference: r.reference}
}

func (r Convergence) namespace() string {
	ns := fmt.Sprintf("bench-%s-%d-%d", strings.ToLower(r.API), r.N, r.Workers)
	if r.Faults != "" {
		ns += "-faults"
	}
	if r.Profile != "" {
		ns += "-" + r.Profile
	}
	if r.Reference {
		ns += "-ref"
	}
	return ns
}

// mintCalls is the calls of one mint on api with no operation pending.
var mintCalls = map[string]int{"IAMv3": 2, "AccessKeyV2": 1}

// cloudFloor is what the cloud calls of n mints take at best: their mean
// latency spread over the workers, or the key's request rate, whichever
// binds. Under faults with pending operations, an IAMv3 mint polls too.
func cloudFloor(api string, n, workers int, f emulator.Faults) float64 {
	calls := float64(mintCalls[api])
	if api == "IAMv3" && f.PendingPollsMax+f.PendingPolls > 0 {
		calls += float64(max(f.PendingPolls, f.PendingPollsMax)+f.PendingPolls)/2 + 1
	}
	latency := float64(f.LatencyMS) / 1000
	if f.LatencyP99MS > f.LatencyMS && f.LatencyMS > 0 {
		sigma := math.Log(float64(f.LatencyP99MS)/float64(f.LatencyMS)) / 2.3263478740408408
		latency *= math.Exp(sigma * sigma / 2) // a log-normal's mean
	}
	floor := float64(n) * calls * latency / float64(workers)
	if f.KeyRate > 0 {
		floor = max(floor, float64(n)*calls/f.KeyRate)
	}
	return floor
}

// converge applies the run's AccessKeys and measures until all are Ready:
// the time, time to Ready per key, and the calls and writes per key. The
// controller (exokey's manager or the reference) is already running.
func (b *bench) converge(ctx context.Context, rn trial) (Convergence, error) {
	r := rn.row()
	namespaces := rn.namespaces
	if len(namespaces) == 0 {
		namespaces = []string{r.namespace()}
	}
	for _, ns := range namespaces {
		if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
			return r, err
		}
	}
	watchNamespace := namespaces[0]
	if len(namespaces) > 1 {
		watchNamespace = "" // all of them
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	wc, err := b.watch(watchCtx, watchNamespace)
	if err != nil {
		return r, err
	}
	var labels map[string]string
	if rn.reference {
		labels = map[string]string{referenceLabel: "true"}
	}
	b.emu.ResetStats()
	faults := b.emu.Faults()
	var before map[string]float64
	if !rn.reference && b.manager != nil {
		if before, err = b.manager.scrape(); err != nil {
			return r, err
		}
	}
	var m *managerProcess
	if !rn.reference {
		m = b.manager
	}
	cpuBefore := cpuSeconds(m)
	started := time.Now()
	keys, err := b.createAccessKeys(ctx, namespaces, rn.n, labels, iamv1beta1.AccessKeySpec{
		IssuerRef:  iamv1beta1.IssuerReference{Name: strings.ToLower(rn.api)},
		Operations: []string{"get-sos-object", "put-sos-object"},
		Resources:  []string{"sos/bucket:bench"},
		Rotation:   &iamv1beta1.RotationSpec{GracePeriodSeconds: 5},
	})
	if err != nil {
		return r, err
	}
	deadline := time.Now().Add(20 * time.Minute)
	for wc.ready() < rn.n {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%s: only %d of %d Ready after 20 minutes", r.namespace(), wc.ready(), rn.n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpuAfter, cpuWall := cpuSeconds(m), time.Since(started).Seconds()
	var last time.Time
	var toReady []float64
	wc.mu.Lock()
	for _, k := range keys {
		at := wc.readyAt[k.name]
		toReady = append(toReady, at.Sub(k.createdAt).Seconds())
		if at.After(last) {
			last = at
		}
	}
	wc.mu.Unlock()
	time.Sleep(time.Second) // let trailing writes, if any, be counted
	sort.Float64s(toReady)
	pct := func(p float64) float64 { return round(toReady[min(len(toReady)-1, int(p*float64(len(toReady))))]) }
	stats := b.emu.Stats()
	r.Seconds = round(last.Sub(started).Seconds())
	r.FloorSeconds = round(cloudFloor(rn.api, rn.n, rn.workers, faults))
	r.TimeRatio = round(r.Seconds / r.FloorSeconds)
	r.CPUSeconds = cpuSince(cpuBefore, cpuAfter)
	fmt.Printf("    cpu: %s\n", formatCPU(r.CPUSeconds, cpuWall))
	r.P50, r.P95, r.P99 = pct(0.50), pct(0.95), pct(0.99)
	r.Percentiles = map[string]float64{"p50": r.P50, "p95": r.P95, "p99": r.P99}
	r.CallsPerKey = map[string]float64{}
	mint := 0
	for op, count := range stats.Operations {
		r.CallsPerKey[op] = round(float64(count) / float64(rn.n))
		if op == "create-iam-role" || op == "create-api-key" || op == "create-access-key" {
			mint += stats.ByOperationStatus[op+" 200"]
		}
	}
	r.TotalCalls = stats.Total
	r.MintCallsPerKey = round(float64(mint) / float64(rn.n))
	r.MintCallsFloor = float64(mintCalls[rn.api])
	r.SecretWritesPerKey = round(float64(wc.secretWrites.Load()) / float64(rn.n))
	r.StatusWritesPerKey = round(float64(wc.akStatusWrites.Load()) / float64(rn.n))
	r.MetaWritesPerKey = round(float64(wc.akModified.Load()-wc.akStatusWrites.Load()) / float64(rn.n))
	wc.mu.Lock()
	r.NotReady = maps.Clone(wc.notReady)
	wc.mu.Unlock()
	if before != nil {
		after, err := b.manager.scrape()
		if err != nil {
			return r, err
		}
		delta := func(metric, match string) float64 {
			return (sum(after, metric, match) - sum(before, metric, match)) / float64(rn.n)
		}
		r.ReconcilesPerKey = round(delta("controller_runtime_reconcile_total", `controller="accesskey"`))
		if os.Getenv("BENCH_DEBUG") != "" {
			for series, v := range after {
				if strings.Contains(series, `controller="accesskey"`) && v-before[series] > 0 && !strings.Contains(series, "_bucket") {
					fmt.Printf("    %s %.0f\n", series, v-before[series])
				}
			}
		}
		r.APIServerRequestsPerKey = map[string]float64{}
		for _, verb := range []string{"GET", "LIST", "POST", "PUT", "PATCH", "DELETE"} {
			if v := delta("rest_client_requests_total", `method="`+verb+`"`); v > 0 {
				r.APIServerRequestsPerKey[verb] = round(v)
			}
		}
		fmt.Printf("    manager: %.2f reconciles and %v apiserver requests per key\n", r.ReconcilesPerKey, r.APIServerRequestsPerKey)
	}
	return r, nil
}

// reference runs the reference controller over the run's AccessKeys, with
// the cloud calls slept as the emulator's current faults would answer them,
// and then removes what it made.
func (b *bench) reference(ctx context.Context, rn trial) (Convergence, error) {
	rn.reference = true
	refCtx, stopRef := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runReference(refCtx, b.config, b.c, rn.workers, newCloudModel(rn.api, b.emu.Faults()))
	}()
	r, err := b.converge(ctx, rn)
	stopRef()
	if refErr := <-done; err == nil {
		err = refErr
	}
	if err != nil {
		return r, err
	}
	namespaces := rn.namespaces
	if len(namespaces) == 0 {
		namespaces = []string{r.namespace()}
	}
	return r, removeReferenceKeys(ctx, b.c, namespaces)
}

type createdKey struct {
	name      string // namespace/name
	createdAt time.Time
}

// createAccessKeys creates key-00000... with spec and labels, spread over
// namespaces, 32 at a time, and returns when each was created.
func (b *bench) createAccessKeys(ctx context.Context, namespaces []string, n int, labels map[string]string,
	spec iamv1beta1.AccessKeySpec) ([]createdKey, error) {
	keys := make([]createdKey, n)
	err := forEach(n, func(i int) error {
		ak := &iamv1beta1.AccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("key-%05d", i), Namespace: namespaces[i%len(namespaces)], Labels: labels},
			Spec:       *spec.DeepCopy(),
		}
		keys[i] = createdKey{name: ak.Namespace + "/" + ak.Name, createdAt: time.Now()}
		return b.c.Create(ctx, ak)
	})
	return keys, err
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
	if _, err := b.createAccessKeys(ctx, []string{namespace}, n, nil, iamv1beta1.AccessKeySpec{
		IssuerRef:  iamv1beta1.IssuerReference{Name: "iamv3"},
		Operations: []string{"get-sos-object", "put-sos-object"},
		Resources:  []string{"sos/bucket:bench"},
		TTLSeconds: iamv1beta1.SecondsOf(ttl),
		Rotation:   &iamv1beta1.RotationSpec{RenewBeforeSeconds: iamv1beta1.SecondsOf(renewBefore)},
	}); err != nil {
		return nil, err
	}
	// Each AccessKey's first credential is the first key it was Ready with.
	first := map[string]string{}
	list := &iamv1beta1.AccessKeyList{}
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
		fmt.Printf("%-11s %5s %7s %8s %8s %6s %8s %6s %6s %6s %6s %11s %9s %9s %9s %s\n",
			"api", "n", "workers", "seconds", "floor", "ratio", "ref s", "ref x", "p50", "p95", "p99",
			"mint calls", "secret w", "status w", "meta w", "profile/faults")
		headerPrinted = true
	}
	fmt.Printf("%-11s %5d %7d %8.2f %8.2f %6.2f %8.2f %6.2f %6.2f %6.2f %6.2f %5.2f/%-5.0f %9.2f %9.2f %9.2f %s\n",
		r.API, r.N, r.Workers, r.Seconds, r.FloorSeconds, r.TimeRatio, r.ReferenceSeconds, r.ReferenceRatio, r.P50, r.P95, r.P99,
		r.MintCallsPerKey, r.MintCallsFloor, r.SecretWritesPerKey, r.StatusWritesPerKey, r.MetaWritesPerKey, r.Profile+r.Faults)
	if len(r.NotReady) > 0 {
		fmt.Printf("    not Ready on the way: %v\n", r.NotReady)
	}
}

// caughtUp waits until the manager has reconciled every AccessKey once
// and its queue is empty, and says how long that took from its start.
func (b *bench) caughtUp(ctx context.Context, m *managerProcess) (time.Duration, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(iamv1beta1.GroupVersion.WithKind("AccessKeyList"))
	if err := b.c.List(ctx, list); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		v, err := m.scrape()
		if err != nil {
			return 0, err
		}
		reconciled := sum(v, "controller_runtime_reconcile_total", `controller="accesskey"`)
		depth := sum(v, "workqueue_depth", `name="accesskey"`)
		if reconciled >= float64(len(list.Items)) && depth == 0 {
			return time.Since(m.started), nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("the manager did not catch up with %d AccessKeys in 15 minutes", len(list.Items))
}

// sum adds up the series of metric whose labels contain match.
func sum(values map[string]float64, metric, match string) float64 {
	total := 0.0
	for series, v := range values {
		if strings.HasPrefix(series, metric+"{") && strings.Contains(series, match) {
			total += v
		}
	}
	return total
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
	lookups := lookupsOf(stats.Operations)
	// Every AccessKey the bench made is checked, across namespaces, by
	// every issuer's inventory.
	list := &iamv1beta1.AccessKeyList{}
	if err := b.c.List(ctx, list); err != nil {
		return nil, err
	}
	issuers := &iamv1beta1.ClusterKeyIssuerList{}
	if err := b.c.List(ctx, issuers); err != nil {
		return nil, err
	}
	perPeriod := float64(b.o.driftPeriod) / float64(period) // the window is a period plus its jitter
	return map[string]any{
		"period": period.String(), "accessKeys": len(list.Items), "issuers": len(issuers.Items), "calls": stats.Operations,
		"callsPerIssuerPerPeriod": round(float64(stats.Total) / float64(len(issuers.Items)) * perPeriod),
		"lookupsPerKeyPerPeriod":  round(float64(lookups) / float64(len(list.Items)) * perPeriod),
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
	list := &iamv1beta1.AccessKeyList{}
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
			got := &iamv1beta1.AccessKey{}
			if err := b.c.Get(ctx, client.ObjectKeyFromObject(&ak), got); err != nil {
				return err
			}
			if got.Annotations == nil {
				got.Annotations = map[string]string{}
			}
			got.Annotations[iamv1beta1.RotateAnnotation] = "bench"
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
