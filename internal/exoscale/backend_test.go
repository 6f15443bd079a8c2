package exoscale_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

// The backends against the emulator over HTTP, through the real SDKs.

type env struct {
	server   *emulator.Server
	endpoint string
	ctx      context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	server, err := emulator.New(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(server)
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{server: server, endpoint: ts.URL + "/v2", ctx: ctx}
}

func (e *env) keys(t *testing.T, api, key, secret string, tune ...func(*exoscale.Config)) exoscale.Keys {
	t.Helper()
	cfg := exoscale.Config{API: api, Endpoint: e.endpoint, Key: key, Secret: exoscale.Secret(secret),
		QPS: 1000, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	for _, f := range tune {
		f(&cfg)
	}
	keys, err := exoscale.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (e *env) rootKeys(t *testing.T, api string, tune ...func(*exoscale.Config)) exoscale.Keys {
	key, secret := e.server.Root()
	return e.keys(t, api, key, secret, tune...)
}

func (e *env) allowed(t *testing.T, c exoscale.Credential, operation string, params map[string]string) bool {
	t.Helper()
	ok, err := emulator.Authorize(e.ctx, e.endpoint, c.ID, c.Secret.Reveal(), operation, params)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

var apis = []string{exoscale.APIIAMv3, exoscale.APIAccessKeyV2}

type probe struct {
	operation string
	bucket    string
	want      bool
}

func TestKeysGrantExactlyTheSpec(t *testing.T) {
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			e := newEnv(t)
			keys := e.rootKeys(t, api)
			for _, tc := range []struct {
				name   string
				spec   exoscale.KeySpec
				probes []probe
			}{
				{"one bucket", exoscale.KeySpec{Operations: []string{"get-sos-object", "list-sos-bucket"}, Resources: []string{"sos/bucket:backups"}}, []probe{
					{"get-sos-object", "backups", true}, {"list-sos-bucket", "backups", true},
					{"get-sos-object", "other", false}, {"put-sos-object", "backups", false}, {"list-instances", "", false},
				}},
				{"compute tag", exoscale.KeySpec{Tags: []string{"compute"}}, []probe{
					{"list-instances", "", true}, {"delete-instance", "", true}, {"list-dns-domains", "", false}, {"get-sos-object", "b", false},
				}},
				{"older tag syntax and an operation", exoscale.KeySpec{Tags: []string{"dns/*"}, Operations: []string{"list-zones"}}, []probe{
					{"list-dns-domains", "", true}, {"list-zones", "", true}, {"list-instances", "", false},
				}},
				{"unrestricted", exoscale.KeySpec{Unrestricted: true}, []probe{
					{"delete-instance", "", true}, {"put-sos-object", "any", true},
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tc.spec.Name = "k8s-" + strings.ReplaceAll(tc.name, " ", "-")
					cred, err := keys.Create(e.ctx, tc.spec)
					if err != nil {
						t.Fatalf("create: %v", err)
					}
					if cred.ID == "" || cred.Secret.Reveal() == "" || (api == exoscale.APIIAMv3) != (cred.RoleID != "") {
						t.Fatalf("create returned %+v", cred.Key)
					}
					for _, p := range tc.probes {
						params := map[string]string{}
						if p.bucket != "" {
							params["bucket"] = p.bucket
						}
						if got := e.allowed(t, cred, p.operation, params); got != p.want {
							t.Errorf("%s on %q: allowed=%v, want %v", p.operation, p.bucket, got, p.want)
						}
					}

					got, err := keys.Get(e.ctx, cred.ID)
					if err != nil || got.Name != tc.spec.Name {
						t.Errorf("get: %+v, %v", got, err)
					}
					found, err := keys.FindByName(e.ctx, tc.spec.Name)
					if err != nil || len(found) != 1 || found[0].ID != cred.ID {
						t.Errorf("find by name: %+v, %v", found, err)
					}

					if err := keys.Revoke(e.ctx, cred.Key); err != nil {
						t.Fatalf("revoke: %v", err)
					}
					if _, err := keys.Get(e.ctx, cred.ID); !errors.Is(err, exoscale.ErrNotFound) {
						t.Errorf("get after revoke: %v, want ErrNotFound", err)
					}
					if err := keys.Revoke(e.ctx, cred.Key); err != nil {
						t.Errorf("a second revoke: %v", err)
					}
					if _, err := emulator.Authorize(e.ctx, e.endpoint, cred.ID, cred.Secret.Reveal(), "list-zones", nil); err == nil {
						t.Error("a revoked credential still authenticates")
					}
				})
			}
			if live := e.server.LiveKeys(); len(live) != 0 {
				t.Errorf("keys left behind: %v", live)
			}
			if api == exoscale.APIIAMv3 && e.server.RoleCount() != 0 {
				t.Errorf("%d roles left behind", e.server.RoleCount())
			}
		})
	}
}

func TestRetriesAndTerminalErrors(t *testing.T) {
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			e := newEnv(t)
			registry := prometheus.NewRegistry()
			keys := e.rootKeys(t, api, func(c *exoscale.Config) {
				c.Metrics, c.RetryWaitMax = exoscale.NewMetrics(registry), 2*time.Second
			})

			// Two throttled creates are retried away: a 429 is answered
			// before anything is applied.
			e.server.SetFaults(emulator.Faults{ThrottleNext: 2, RetryAfterSeconds: 1})
			ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
			defer cancel()
			cred, err := keys.Create(ctx, exoscale.KeySpec{Name: "retried", Operations: []string{"list-zones"}})
			if err != nil {
				t.Fatalf("create through faults: %v", err)
			}
			stats := e.server.Stats()
			if stats.Statuses["429"] != 2 {
				t.Errorf("want the faults served: %v", stats.Statuses)
			}

			// A create answered 503 or 504 may have been applied: it is not
			// sent again, the caller recovers by name. Reads are retried.
			for _, faults := range []emulator.Faults{{FailNext: 1}, {LoseResponseNext: 1}} {
				e.server.SetFaults(faults)
				e.server.ResetStats()
				_, err := keys.Create(ctx, exoscale.KeySpec{Name: "not-sent-twice", Operations: []string{"list-zones"}})
				var apiErr *exoscale.APIError
				if !errors.As(err, &apiErr) || apiErr.Terminal() || (apiErr.Status != 503 && apiErr.Status != 504) {
					t.Fatalf("create with %+v: %v, want a retryable 5xx", faults, err)
				}
				if calls := e.server.Stats().Total; calls != 1 {
					t.Errorf("create with %+v was sent %d times", faults, calls)
				}
			}
			e.server.SetFaults(emulator.Faults{FailNext: 2})
			if _, err := keys.Get(ctx, cred.ID); err != nil {
				t.Fatalf("a read through two 503s: %v", err)
			}
			firstOp := map[string]string{exoscale.APIIAMv3: "create-iam-role", exoscale.APIAccessKeyV2: "create-access-key"}[api]
			if got := testutil.ToFloat64(mustCounter(t, registry, api, firstOp, "429")); got != 2 {
				t.Errorf("exokey_api_requests_total{code=429} = %v, want 2", got)
			}

			// A key without the right to mint gets a terminal 403 at once.
			restricted := e.keys(t, api, cred.ID, cred.Secret.Reveal())
			e.server.ResetStats()
			_, err = restricted.Create(ctx, exoscale.KeySpec{Name: "refused", Operations: []string{"list-zones"}})
			var apiErr *exoscale.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 403 || !apiErr.Terminal() || !exoscale.IsTerminal(err) {
				t.Fatalf("got %v, want a terminal 403", err)
			}
			if !strings.Contains(err.Error(), "may not call") || strings.Contains(err.Error(), cred.Secret.Reveal()) {
				t.Errorf("the error should say why and never hold a secret: %v", err)
			}
			if calls := e.server.Stats().Total; calls != 1 {
				t.Errorf("a 403 must not be retried: %d calls", calls)
			}

			// A spec the catalogue refuses never reaches the API.
			e.server.ResetStats()
			_, err = keys.Create(ctx, exoscale.KeySpec{Name: "typo", Operations: []string{"get-sos-objekt"}})
			var specErr *exoscale.SpecError
			if !errors.As(err, &specErr) || specErr.Reason != exoscale.ReasonUnknownOperation || e.server.Stats().Total != 0 {
				t.Errorf("got %v after %d calls, want UnknownOperation before any call", err, e.server.Stats().Total)
			}

			// Retries are bounded: an API that keeps failing is reported.
			e.server.SetFaults(emulator.Faults{ErrorRate: 1})
			_, err = keys.Get(ctx, cred.ID)
			if !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Terminal() {
				t.Errorf("got %v, want a retryable 503 after the retries", err)
			}
		})
	}
}

// A throttled call is not waited for beyond a short bound: it fails at once
// with the wait, so the caller's worker can go on to other work. A 429
// slows the issuer; one at its slowest rate stops it for the Retry-After.
func TestThrottlingIsNotWaitedFor(t *testing.T) {
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			e := newEnv(t)
			keys := e.rootKeys(t, api)

			e.server.SetFaults(emulator.Faults{ThrottleNext: 1, RetryAfterSeconds: 30})
			started := time.Now()
			_, err := keys.Get(e.ctx, "EXOnothing")
			after, throttled := exoscale.RetryAfter(err)
			if !throttled || after != 30*time.Second || time.Since(started) > 5*time.Second {
				t.Errorf("a 429 asking for 30 s: got %v (retry after %s) after %s, want it returned at once with the wait",
					err, after, time.Since(started))
			}
			if calls := e.server.Stats().Total; calls != 1 {
				t.Errorf("the 429 was sent %d times, want once", calls)
			}
			// One 429 slows the issuer's other calls, it does not stop them.
			if _, err := keys.Get(e.ctx, "EXOother"); !errors.Is(err, exoscale.ErrNotFound) {
				t.Errorf("the next call after a single 429: got %v, want it sent and answered", err)
			}
			if calls := e.server.Stats().Total; calls != 2 {
				t.Errorf("after a single 429 the next call was not sent (%d calls)", calls)
			}

			// 429 after 429: each halves the rate, and the one at the
			// slowest rate (a sixteenth) holds the issuer's other calls back
			// for its Retry-After, so a limit that holds does not get one
			// throttled answer per worker.
			e.server.SetFaults(emulator.Faults{ThrottleNext: 5, RetryAfterSeconds: 30})
			for range 5 {
				if _, throttled := exoscale.RetryAfter(firstErr(keys.Get(e.ctx, "EXOnothing"))); !throttled {
					t.Fatal("the emulator was to answer 429")
				}
			}
			_, err = keys.Get(e.ctx, "EXOother")
			if after, throttled := exoscale.RetryAfter(err); !throttled || after < 25*time.Second {
				t.Errorf("the next call after a 429 at the slowest rate: got %v (retry after %s), want it held back for the rest of the 30 s", err, after)
			}
			if calls := e.server.Stats().Total; calls != 7 {
				t.Errorf("a call was sent within the Retry-After of a limit that holds (%d calls, want 7)", calls)
			}

			// The client's own limit: one request a minute, no burst to spare.
			slow := e.rootKeys(t, api, func(c *exoscale.Config) { c.QPS, c.Burst, c.MaxRateWait = 1.0/60, 1, 100*time.Millisecond })
			if _, err := slow.Get(e.ctx, "EXOfirst"); !errors.Is(err, exoscale.ErrNotFound) {
				t.Fatalf("the first call: %v", err)
			}
			e.server.ResetStats()
			_, err = slow.Get(e.ctx, "EXOsecond")
			if after, throttled := exoscale.RetryAfter(err); !throttled || after < 50*time.Second || exoscale.IsTerminal(err) {
				t.Errorf("over the client's rate: got %v (retry after %s), want a retryable wait of about a minute", err, after)
			}
			if calls := e.server.Stats().Total; calls != 0 {
				t.Errorf("a request over the rate limit was sent (%d calls)", calls)
			}
		})
	}
}

// Concurrent calls of one issuer reuse their connections: against Exoscale
// each new one is a TLS handshake.
func TestConcurrentCallsReuseConnections(t *testing.T) {
	server, err := emulator.New(emulator.Options{Faults: emulator.Faults{LatencyMS: 5}})
	if err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64
	ts := httptest.NewUnstartedServer(server)
	ts.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	e := &env{server: server, endpoint: ts.URL + "/v2", ctx: context.Background()}
	const workers, calls = 16, 20
	for _, api := range apis {
		opened.Store(0)
		keys := e.rootKeys(t, api)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range calls {
					if _, err := keys.Get(e.ctx, "EXOnothing"); !errors.Is(err, exoscale.ErrNotFound) {
						t.Errorf("%s: %v", api, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if n := opened.Load(); n > workers+workers/2 {
			t.Errorf("%s: %d workers making %d calls each opened %d connections, want about one each", api, workers, calls, n)
		}
	}
}

// An endpoint that accepts connections and never answers holds a call no
// longer than its deadline.
func TestDeadEndpointHoldsACallNoLongerThanItsDeadline(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() }) // accepted, never answered
		}
	}()
	for _, api := range apis {
		keys, err := exoscale.New(exoscale.Config{API: api, Endpoint: "http://" + listener.Addr().String() + "/v2",
			Key: "EXOkey", Secret: "secret", Timeout: 200 * time.Millisecond, CallTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		_, err = keys.Get(context.Background(), "EXOanything")
		if held := time.Since(started); err == nil || held > 3*time.Second {
			t.Errorf("%s: a call to a dead endpoint returned %v after %s, want an error within its 1 s deadline", api, err, held)
		}
	}
}

func mustCounter(t *testing.T, registry *prometheus.Registry, labels ...string) prometheus.Collector {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "exokey_api_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			values := map[string]string{}
			for _, l := range m.GetLabel() {
				values[l.GetName()] = l.GetValue()
			}
			if values["api"] == labels[0] && values["operation"] == labels[1] && values["code"] == labels[2] {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, m.GetCounter().GetValue)
			}
		}
	}
	t.Fatalf("no exokey_api_requests_total%v", labels)
	return nil
}

func TestIAMv3CreateCleansUpTheRoleWhenTheKeyFails(t *testing.T) {
	e := newEnv(t)
	root := e.rootKeys(t, exoscale.APIIAMv3)
	// An issuer that may create roles but not API keys.
	issuer, err := root.Create(e.ctx, exoscale.KeySpec{Name: "issuer", Tags: []string{"general", "sos"},
		Operations: []string{"create-iam-role", "delete-iam-role", "get-iam-role", "list-iam-roles"}})
	if err != nil {
		t.Fatal(err)
	}
	roles := e.server.RoleCount()
	_, err = e.keys(t, exoscale.APIIAMv3, issuer.ID, issuer.Secret.Reveal()).Create(e.ctx,
		exoscale.KeySpec{Name: "half", Operations: []string{"get-sos-object"}})
	if err == nil || !strings.Contains(err.Error(), "create-api-key") {
		t.Fatalf("got %v, want the create-api-key refusal", err)
	}
	if got := e.server.RoleCount(); got != roles {
		t.Errorf("%d roles after a failed create, want %d: the role must be deleted", got, roles)
	}
}

func TestIAMv3FindByNameReturnsARoleWithoutKey(t *testing.T) {
	e := newEnv(t)
	root := e.rootKeys(t, exoscale.APIIAMv3)
	issuer, err := root.Create(e.ctx, exoscale.KeySpec{Name: "issuer", Tags: []string{"general", "sos"},
		Operations: []string{"create-iam-role", "list-iam-roles", "list-api-keys"}})
	if err != nil {
		t.Fatal(err)
	}
	// The issuer cannot delete the role it made, so the role stays behind,
	// as after a crash between the two creates.
	_, _ = e.keys(t, exoscale.APIIAMv3, issuer.ID, issuer.Secret.Reveal()).Create(e.ctx,
		exoscale.KeySpec{Name: "orphan", Operations: []string{"get-sos-object"}})
	found, err := root.FindByName(e.ctx, "orphan")
	if err != nil || len(found) != 1 || found[0].ID != "" || found[0].RoleID == "" {
		t.Fatalf("find by name: %+v, %v; want the role without a key", found, err)
	}
	if err := root.Revoke(e.ctx, found[0]); err != nil {
		t.Fatal(err)
	}
	if found, _ := root.FindByName(e.ctx, "orphan"); len(found) != 0 {
		t.Errorf("revoking the role must delete it: %+v", found)
	}
}

func TestGrantable(t *testing.T) {
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			e := newEnv(t)
			root := e.rootKeys(t, api)
			all, err := root.Grantable(e.ctx)
			if err != nil || len(all.Operations) < 400 {
				t.Fatalf("the root key holds everything: %d, %v", len(all.Operations), err)
			}
			// A key learns what it holds through introspection operations of its own API.
			introspect := map[string][]string{
				exoscale.APIIAMv3:       {"get-api-key", "get-iam-role"},
				exoscale.APIAccessKeyV2: {"list-access-key-operations"},
			}[api]
			cred, err := root.Create(e.ctx, exoscale.KeySpec{Name: "narrow", Tags: []string{"dns"},
				Operations: append([]string{"get-sos-object"}, introspect...), Resources: []string{"sos/bucket:b"}})
			if err != nil {
				t.Fatal(err)
			}
			grantable, err := e.keys(t, api, cred.ID, cred.Secret.Reveal()).Grantable(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			narrow := grantable.Operations
			if !slices.Contains(narrow, "list-dns-domains") || !slices.Contains(narrow, "get-sos-object") || !slices.Contains(narrow, "get-object") ||
				slices.Contains(narrow, "list-instances") || len(narrow) > 20 {
				t.Errorf("grantable of a dns+get-sos-object key: %v", narrow)
			}
			if api == exoscale.APIIAMv3 && (len(grantable.Notes) != 1 || !strings.Contains(grantable.Notes[0], "organisation policy could not be read")) {
				t.Errorf("a key that may not read the organisation policy says so: %v", grantable.Notes)
			}
		})
	}
}

func firstErr[T any](_ T, err error) error { return err }

func TestListAnswersTheOrganisationAndPutPolicyRestoresARole(t *testing.T) {
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			e := newEnv(t)
			keys := e.rootKeys(t, api)
			spec := exoscale.KeySpec{Name: "k8s-listed", Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:backups"},
				Labels: map[string]string{"exokey.io/uid": "u1"}}
			cred, err := keys.Create(e.ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			listing, err := keys.List(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			roleID, listed := listing.Keys[cred.ID]
			if !listed || roleID != cred.RoleID {
				t.Fatalf("the listing holds key %s with role %q (listed %v), want role %q", cred.ID, roleID, listed, cred.RoleID)
			}
			if api == exoscale.APIAccessKeyV2 {
				if listing.Roles != nil {
					t.Errorf("a legacy listing holds roles: %v", listing.Roles)
				}
				if err := keys.PutPolicy(e.ctx, "any", spec); !errors.Is(err, exoscale.ErrNoRoles) {
					t.Errorf("PutPolicy on legacy keys: %v, want ErrNoRoles", err)
				}
				return
			}
			want, err := exoscale.CompilePolicy(spec, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			role := listing.Roles[cred.RoleID]
			if !policy.Equal(role.Policy, want) || role.Labels["exokey.io/uid"] != "u1" || role.Name != spec.Name {
				t.Fatalf("listed role %+v, want the compiled policy %s and its labels", role, want.Describe())
			}

			// Widened behind the backend's back, then put back.
			if err := keys.PutPolicy(e.ctx, cred.RoleID, exoscale.KeySpec{Unrestricted: true}); err != nil {
				t.Fatal(err)
			}
			if !e.allowed(t, cred, "create-api-key", nil) {
				t.Fatal("the widened role does not allow create-api-key")
			}
			widened, err := exoscale.CompilePolicy(exoscale.KeySpec{Unrestricted: true}, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			if listing, err = keys.List(e.ctx); err != nil {
				t.Fatal(err)
			}
			if got := listing.Roles[cred.RoleID].Policy; !policy.Equal(got, widened) || policy.Equal(got, want) {
				t.Fatalf("listed after the widening: %s, want %s", got.Describe(), widened.Describe())
			}
			if err := keys.PutPolicy(e.ctx, cred.RoleID, spec); err != nil {
				t.Fatal(err)
			}
			if e.allowed(t, cred, "create-api-key", nil) || !e.allowed(t, cred, "get-sos-object", map[string]string{"bucket": "backups"}) {
				t.Error("PutPolicy did not restore exactly the spec's rights")
			}
			listing, err = keys.List(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := listing.Roles[cred.RoleID].Policy; !policy.Equal(got, want) {
				t.Errorf("listed after PutPolicy: %s, want %s", got.Describe(), want.Describe())
			}
			if err := keys.PutPolicy(e.ctx, "00000000-0000-0000-0000-000000000000", spec); !errors.Is(err, exoscale.ErrNotFound) {
				t.Errorf("PutPolicy of a role that does not exist: %v, want ErrNotFound", err)
			}
		})
	}
}
