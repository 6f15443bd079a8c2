// Package monitoring checks what the chart ships for monitoring exokey: the
// alerts (dist/chart/files/alerts.yaml) with Prometheus's own tools, and
// the Grafana dashboard (dist/chart/files/dashboard.json), whose every
// query must parse and name only metrics the manager exports. promtool and
// metricnames are built from the Go module proxy into bin/ by `make test`.
package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	"sigs.k8s.io/yaml"

	"github.com/exokey/exokey/internal/controller"
	"github.com/exokey/exokey/internal/exoscale"
)

var root = filepath.Join("..", "..")

// tool returns the path of a tool make builds into bin/.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(root, "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is not built: run make test (or make %s)", path, name)
	}
	return path
}

func TestAlertRulesPassPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(root, "dist", "chart", "files", "alerts.yaml")},
		{"test", "rules", filepath.Join("alerts_test.yaml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args[:2], " "), out)
		if err != nil {
			t.Fatalf("promtool %s: %v", strings.Join(args[:2], " "), err)
		}
	}
}

// TestEveryAlertHasARunbook checks that each alert links to its entry in
// docs/operations/metrics.md, and that the entry is there.
func TestEveryAlertHasARunbook(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range alertRules(t) {
		anchor := strings.ToLower(rule.Alert)
		if want := "docs/operations/metrics.md#" + anchor; !strings.HasSuffix(rule.Annotations["runbook_url"], want) {
			t.Errorf("%s: runbook_url %q does not end in %s", rule.Alert, rule.Annotations["runbook_url"], want)
		}
		if !bytes.Contains(doc, []byte("### "+rule.Alert+"\n")) {
			t.Errorf("%s: docs/operations/metrics.md has no section ### %s", rule.Alert, rule.Alert)
		}
	}
}

// TestDashboardAndAlertsNameOnlyExportedMetrics parses every query of the
// dashboard and the alerts with Prometheus's parser and checks each metric
// it names against what the manager registers.
func TestDashboardAndAlertsNameOnlyExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "dist", "chart", "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	queries := map[string]string{} // query: where it is
	for _, p := range dashboard.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			// Grafana's interval variables, as Grafana substitutes them.
			queries[strings.ReplaceAll(target.Expr, "$__rate_interval", "5m")] = "panel " + p.Title
		}
	}
	for _, rule := range alertRules(t) {
		queries[rule.Expr] = "alert " + rule.Alert
	}
	if len(dashboard.Panels) < 10 {
		t.Fatalf("the dashboard has %d panels", len(dashboard.Panels))
	}

	exported := exportedMetrics(t)
	var input bytes.Buffer
	var order []string
	for q := range queries {
		line, _ := json.Marshal(q)
		input.Write(append(line, '\n'))
		order = append(order, q)
	}
	cmd := exec.Command(tool(t, "metricnames"))
	cmd.Stdin = &input
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("a query does not parse: %v: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(order) {
		t.Fatalf("metricnames answered %d lines for %d queries", len(lines), len(order))
	}
	named := 0
	for i, line := range lines {
		var names []string
		if err := json.Unmarshal([]byte(line), &names); err != nil {
			t.Fatal(err)
		}
		if len(names) == 0 {
			t.Errorf("%s names no metric: %s", queries[order[i]], order[i])
		}
		for _, name := range names {
			named++
			if !exported[strings.TrimSuffix(name, "_bucket")] && !exported[name] {
				t.Errorf("%s names %s, which the manager does not export: %s", queries[order[i]], name, order[i])
			}
		}
	}
	t.Logf("%d queries (%d panels, %d alerts) parse and name %d metrics, each exported", len(order), len(dashboard.Panels),
		len(alertRules(t)), named)
}

type alertRule struct {
	Alert       string
	Expr        string
	Annotations map[string]string
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "dist", "chart", "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Groups []struct{ Rules []alertRule } }
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("no alert rules")
	}
	return rules
}

// fqName reads a descriptor's metric name: client_golang prints
// descriptors as Desc{fqName: "name", ...} and offers no getter.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics are the metric names the manager registers: exokey's own,
// described by their collectors (a vector without children is described,
// though not yet exposed), and controller-runtime's that the dashboard
// reads, which every manager exposes once a controller has run.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	reg := &recorder{}
	exoscale.NewMetrics(reg)
	controller.NewMetrics(reg, nil)
	names := map[string]bool{}
	descs := make(chan *prometheus.Desc, 256)
	for _, c := range reg.collectors {
		c.Describe(descs)
	}
	close(descs)
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	if !names["exokey_access_keys"] || !names["exokey_api_requests_total"] {
		t.Fatalf("exokey's collectors described %v", slices.Sorted(maps.Keys(names)))
	}
	for _, name := range controllerRuntimeMetrics(t) {
		names[name] = true
	}
	return names
}

// recorder is a Registerer that keeps what is registered with it.
type recorder struct{ collectors []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}

func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// controllerRuntimeMetrics runs a controller-runtime controller through one
// reconcile, as the manager's controllers run, and lists the metric names
// controller-runtime's registry then exposes.
func controllerRuntimeMetrics(t *testing.T) []string {
	t.Helper()
	done := make(chan struct{})
	c, err := ctrlcontroller.NewUnmanaged("monitoring-probe", ctrlcontroller.Options{
		Reconciler: reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			close(done)
			return reconcile.Result{}, nil
		}),
		SkipNameValidation: ptr.To(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan event.GenericEvent, 1)
	if err := c.Watch(source.Channel(events, &handler.EnqueueRequestForObject{})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Start(ctx) }()
	obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"}}
	events <- event.GenericEvent{Object: obj}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the probe controller did not reconcile")
	}
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	return names
}
