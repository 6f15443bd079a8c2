package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	egoscale "github.com/exoscale/egoscale/v2"
	apiv2 "github.com/exoscale/egoscale/v2/api"
	v3 "github.com/exoscale/egoscale/v3"
	"github.com/exoscale/egoscale/v3/credentials"

	"github.com/exokey/exokey/internal/emulator"
)

// These tests drive the emulator over HTTP with the official clients,
// unmodified: egoscale v2 for legacy access keys, egoscale v3 for IAM roles
// and API keys.

const zone = "ch-gva-2"

type fixture struct {
	server   *emulator.Server
	http     *httptest.Server
	endpoint string // .../v2
	ctx      context.Context
	offset   atomic.Int64 // added to the emulator's clock, in nanoseconds
}

func start(t *testing.T, opts emulator.Options) *fixture {
	t.Helper()
	f := &fixture{}
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }
	server, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.server = server
	f.http = httptest.NewServer(server)
	t.Cleanup(f.http.Close)
	f.endpoint = f.http.URL + "/v2"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	f.ctx = apiv2.WithZone(ctx, zone)
	return f
}

func (f *fixture) v2(t *testing.T, key, secret string) *egoscale.Client {
	t.Helper()
	c, err := egoscale.NewClient(key, secret,
		egoscale.ClientOptWithAPIEndpoint(f.http.URL),
		egoscale.ClientOptWithPollInterval(20*time.Millisecond),
		egoscale.ClientOptWithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) v3(t *testing.T, key, secret string) *v3.Client {
	t.Helper()
	c, err := v3.NewClient(credentials.NewStaticCredentials(key, secret),
		v3.ClientOptWithEndpoint(v3.Endpoint(f.endpoint)),
		v3.ClientOptWithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) root() (string, string) { return f.server.Root() }

func (f *fixture) rootV2(t *testing.T) *egoscale.Client {
	key, secret := f.root()
	return f.v2(t, key, secret)
}

func (f *fixture) rootV3(t *testing.T) *v3.Client {
	key, secret := f.root()
	return f.v3(t, key, secret)
}

func (f *fixture) allowed(t *testing.T, key, secret, operation string, params map[string]string) bool {
	t.Helper()
	ok, err := emulator.Authorize(f.ctx, f.endpoint, key, secret, operation, params)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestLegacyAccessKeysWithEgoscaleV2(t *testing.T) {
	f := start(t, emulator.Options{PendingPolls: 2})
	root := f.rootV2(t)

	key, err := root.CreateIAMAccessKey(f.ctx, zone, "reader",
		egoscale.CreateIAMAccessKeyWithOperations([]string{"list-zones", "get-access-key", "get-operation"}),
		egoscale.CreateIAMAccessKeyWithTags([]string{"dns"}))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if key.Secret == nil || len(*key.Secret) != 43 || !strings.HasPrefix(*key.Key, "EXO") {
		t.Fatalf("create must return an EXO key and its 43-character secret")
	}
	if *key.Type != "restricted" || !slices.Contains(*key.Operations, "list-dns-domains") {
		t.Errorf("tags must expand into operations; got type %s and %d operations", *key.Type, len(*key.Operations))
	}

	got, err := root.GetIAMAccessKey(f.ctx, zone, *key.Key)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Secret != nil && *got.Secret != "" {
		t.Error("get must never return the secret")
	}
	listed, err := root.ListIAMAccessKeys(f.ctx, zone)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if !slices.ContainsFunc(listed, func(k *egoscale.IAMAccessKey) bool { return *k.Key == *key.Key && k.Secret == nil }) {
		t.Error("list must hold the new key, without its secret")
	}

	// The minted key, through the same client: allowed and forbidden calls.
	minted := f.v2(t, *key.Key, *key.Secret)
	if _, err := minted.GetIAMAccessKey(f.ctx, zone, *key.Key); err != nil {
		t.Errorf("allowed call refused: %v", err)
	}
	_, err = minted.ListIAMAccessKeys(f.ctx, zone)
	if !errors.Is(err, apiv2.ErrInvalidRequest) || !strings.Contains(err.Error(), "may not call list-access-keys") {
		t.Errorf("forbidden call: got %v, want a 403 naming the operation", err)
	}
	mine, err := root.ListMyIAMAccessKeyOperations(f.ctx, zone)
	if err != nil || len(mine) < 300 {
		t.Errorf("the root key holds every operation; got %d, %v", len(mine), err)
	}

	// Inheritance: the minted key cannot mint a key holding more than itself.
	_, err = minted.CreateIAMAccessKey(f.ctx, zone, "wider", egoscale.CreateIAMAccessKeyWithOperations([]string{"list-zones"}))
	if err == nil || !strings.Contains(err.Error(), "may not call create-access-key") {
		t.Errorf("a key without create-access-key created a key: %v", err)
	}
	creator, err := root.CreateIAMAccessKey(f.ctx, zone, "creator",
		egoscale.CreateIAMAccessKeyWithOperations([]string{"create-access-key", "list-zones"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.v2(t, *creator.Key, *creator.Secret).CreateIAMAccessKey(f.ctx, zone, "wider",
		egoscale.CreateIAMAccessKeyWithOperations([]string{"list-zones", "delete-instance"}))
	if err == nil || !strings.Contains(err.Error(), "cannot grant what it does not hold: delete-instance") {
		t.Errorf("inheritance: got %v, want a refusal naming delete-instance", err)
	}

	// Revoke waits for the async operation (pending for two polls).
	if err := root.RevokeIAMAccessKey(f.ctx, zone, key); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := root.GetIAMAccessKey(f.ctx, zone, *key.Key); !errors.Is(err, apiv2.ErrNotFound) {
		t.Errorf("get after revoke: %v, want ErrNotFound", err)
	}
	if _, err := minted.GetIAMAccessKey(f.ctx, zone, *key.Key); err == nil || !strings.Contains(err.Error(), "unknown, revoked or expired key") {
		t.Errorf("a revoked key still authenticates: %v", err)
	}
	if stats := f.server.Stats(); stats.Operations["get-operation"] < 3 {
		t.Errorf("revoke must poll the operation until done; saw %d polls", stats.Operations["get-operation"])
	}
}

func TestLegacyResourcesRestrictBuckets(t *testing.T) {
	f := start(t, emulator.Options{})
	root := f.rootV2(t)
	key, err := root.CreateIAMAccessKey(f.ctx, zone, "bucket",
		egoscale.CreateIAMAccessKeyWithOperations([]string{"get-sos-object", "list-zones"}),
		egoscale.CreateIAMAccessKeyWithResources([]egoscale.IAMAccessKeyResource{{Domain: "sos", ResourceType: "bucket", ResourceName: "backups"}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op     string
		params map[string]string
		want   bool
	}{
		{"get-sos-object", map[string]string{"bucket": "backups"}, true},
		{"get-sos-object", map[string]string{"bucket": "other"}, false},
		{"get-sos-object", nil, false},
		{"put-sos-object", map[string]string{"bucket": "backups"}, false},
		{"list-zones", nil, true},
	} {
		if got := f.allowed(t, *key.Key, *key.Secret, tc.op, tc.params); got != tc.want {
			t.Errorf("%s %v: allowed=%v, want %v", tc.op, tc.params, got, tc.want)
		}
	}
}

func sosPolicy(bucket string) *v3.IAMPolicy {
	return &v3.IAMPolicy{
		DefaultServiceStrategy: v3.IAMPolicyDefaultServiceStrategyDeny,
		Services: map[string]v3.IAMServicePolicy{
			"compute": {Type: v3.IAMServicePolicyTypeAllow}, // list-zones is compute
			"sos": {Type: v3.IAMServicePolicyTypeRules, Rules: []v3.IAMServicePolicyRule{{
				Action:     v3.IAMServicePolicyRuleActionAllow,
				Expression: "operation in ['get-object', 'head-object', 'list-objects'] && parameters.bucket == '" + bucket + "'",
			}}},
		},
	}
}

func TestIAMv3RolesAndAPIKeysWithEgoscaleV3(t *testing.T) {
	f := start(t, emulator.Options{PendingPolls: 1})
	root := f.rootV3(t)

	op, err := root.CreateIAMRole(f.ctx, v3.CreateIAMRoleRequest{
		Name: "backup-reader", Labels: v3.Labels{"exokey.io/owner": "backups.reader"}, Policy: sosPolicy("backups"),
	})
	if err != nil {
		t.Fatalf("create role: %v", err)
	}
	if op.State != v3.OperationStatePending {
		t.Errorf("with pending polls the operation starts pending, got %s", op.State)
	}
	op, err = root.Wait(f.ctx, op, v3.OperationStateSuccess)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	roleID := op.Reference.ID
	role, err := root.GetIAMRole(f.ctx, roleID)
	if err != nil || role.Name != "backup-reader" || role.Labels["exokey.io/owner"] != "backups.reader" {
		t.Fatalf("get role: %+v, %v", role, err)
	}
	roles, err := root.ListIAMRoles(f.ctx)
	if err != nil || len(roles.IAMRoles) != 1 {
		t.Fatalf("list roles: %+v, %v", roles, err)
	}

	created, err := root.CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "backup-reader", RoleID: roleID})
	if err != nil || created.Secret == "" || created.RoleID != roleID {
		t.Fatalf("create API key: %v", err)
	}
	got, err := root.GetAPIKey(f.ctx, created.Key)
	if err != nil || got.Name != "backup-reader" {
		t.Fatalf("get API key: %+v, %v", got, err)
	}
	keys, err := root.ListAPIKeys(f.ctx)
	if err != nil || len(keys.APIKeys) != 1 {
		t.Fatalf("list API keys: %+v, %v", keys, err)
	}

	// The minted key, through the same client.
	minted := f.v3(t, created.Key, created.Secret)
	if _, err := minted.GetOperation(f.ctx, op.ID); err != nil {
		t.Errorf("allowed call refused: %v", err)
	}
	if _, err := minted.ListAPIKeys(f.ctx); !errors.Is(err, v3.ErrForbidden) {
		t.Errorf("forbidden call: got %v, want ErrForbidden", err)
	}
	if !f.allowed(t, created.Key, created.Secret, "get-sos-object", map[string]string{"bucket": "backups"}) {
		t.Error("the policy allows get-sos-object on backups")
	}
	if f.allowed(t, created.Key, created.Secret, "get-sos-object", map[string]string{"bucket": "other"}) {
		t.Error("the policy allows no other bucket")
	}
	if f.allowed(t, created.Key, created.Secret, "put-sos-object", map[string]string{"bucket": "backups"}) {
		t.Error("the policy allows no put")
	}

	// A role with keys cannot go; the key first, then the role.
	if _, err := root.DeleteIAMRole(f.ctx, roleID); !errors.Is(err, v3.ErrConflict) {
		t.Errorf("delete a role with keys: %v, want ErrConflict", err)
	}
	op, err = root.DeleteAPIKey(f.ctx, created.Key)
	if err == nil {
		_, err = root.Wait(f.ctx, op, v3.OperationStateSuccess)
	}
	if err != nil {
		t.Fatalf("delete API key: %v", err)
	}
	if _, err := root.GetAPIKey(f.ctx, created.Key); !errors.Is(err, v3.ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if _, err := minted.GetOperation(f.ctx, op.ID); !errors.Is(err, v3.ErrForbidden) {
		t.Errorf("a deleted key still authenticates: %v", err)
	}
	if _, err := root.DeleteIAMRole(f.ctx, roleID); err != nil {
		t.Fatalf("delete role: %v", err)
	}
	if _, err := root.GetIAMRole(f.ctx, roleID); !errors.Is(err, v3.ErrNotFound) {
		t.Errorf("get role after delete: %v, want ErrNotFound", err)
	}
}

func TestIAMv3PolicyUpdateValidationAndInheritance(t *testing.T) {
	f := start(t, emulator.Options{})
	root := f.rootV3(t)
	roleID := createRole(t, f, root, "narrow", sosPolicy("a"))

	// Invalid policies are refused with a message.
	for _, bad := range []v3.IAMPolicy{
		{DefaultServiceStrategy: "maybe", Services: map[string]v3.IAMServicePolicy{}},
		{DefaultServiceStrategy: "deny", Services: map[string]v3.IAMServicePolicy{"sos": {Type: "rules",
			Rules: []v3.IAMServicePolicyRule{{Action: "allow", Expression: "operation =="}}}}},
		{DefaultServiceStrategy: "deny", Services: map[string]v3.IAMServicePolicy{"sos": {Type: "rules",
			Rules: []v3.IAMServicePolicyRule{{Action: "allow", Expression: "'not a bool'"}}}}},
	} {
		if _, err := root.UpdateIAMRolePolicy(f.ctx, v3.UUID(roleID), bad); !errors.Is(err, v3.ErrBadRequest) {
			t.Errorf("policy %+v: got %v, want ErrBadRequest", bad, err)
		}
	}

	// The policy of a role applies to its keys at once.
	created, err := root.CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "k", RoleID: v3.UUID(roleID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.UpdateIAMRolePolicy(f.ctx, v3.UUID(roleID), *sosPolicy("b")); err != nil {
		t.Fatalf("update policy: %v", err)
	}
	if f.allowed(t, created.Key, created.Secret, "get-sos-object", map[string]string{"bucket": "a"}) ||
		!f.allowed(t, created.Key, created.Secret, "get-sos-object", map[string]string{"bucket": "b"}) {
		t.Error("the updated policy must apply to the role's key")
	}

	// A key that may manage IAM but only reads bucket b cannot mint a role reaching further.
	iamPolicy := sosPolicy("b")
	iamPolicy.Services["iam"] = v3.IAMServicePolicy{Type: v3.IAMServicePolicyTypeAllow}
	managerRole := createRole(t, f, root, "manager", iamPolicy)
	manager, err := root.CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "manager", RoleID: v3.UUID(managerRole)})
	if err != nil {
		t.Fatal(err)
	}
	managerClient := f.v3(t, manager.Key, manager.Secret)
	if _, err := managerClient.CreateIAMRole(f.ctx, v3.CreateIAMRoleRequest{Name: "ok", Policy: sosPolicy("b")}); err != nil {
		t.Errorf("a role within the manager's rights: %v", err)
	}
	_, err = managerClient.CreateIAMRole(f.ctx, v3.CreateIAMRoleRequest{Name: "wider", Policy: sosPolicy("c")})
	if !errors.Is(err, v3.ErrForbidden) || !strings.Contains(apiMessage(err), "cannot grant what it does not hold: get-object") {
		t.Errorf("a role beyond the manager's rights: got %v, want 403 naming get-object", err)
	}
	_, err = managerClient.CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "x", RoleID: v3.UUID(roleID)})
	if err != nil {
		t.Errorf("a key for a role within the manager's rights (bucket b): %v", err)
	}
}

// apiMessage is the message of an egoscale v3 API error.
func apiMessage(err error) string {
	var apiErr *v3.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Message
	}
	return ""
}

func createRole(t *testing.T, f *fixture, c *v3.Client, name string, policy *v3.IAMPolicy) string {
	t.Helper()
	op, err := c.CreateIAMRole(f.ctx, v3.CreateIAMRoleRequest{Name: name, Policy: policy})
	if err == nil {
		op, err = c.Wait(f.ctx, op, v3.OperationStateSuccess)
	}
	if err != nil {
		t.Fatalf("create role %s: %v", name, err)
	}
	return string(op.Reference.ID)
}

func TestAssumeRoleKeysExpire(t *testing.T) {
	f := start(t, emulator.Options{})
	root := f.rootV3(t)
	roleID := createRole(t, f, root, "session", sosPolicy("a"))
	session, err := root.AssumeIAMRole(f.ctx, v3.UUID(roleID), v3.AssumeIAMRoleRequest{Ttl: 60})
	if err != nil {
		t.Fatalf("assume: %v", err)
	}
	// get-operation is allowed (service general): an unknown id answers 404
	// while the key is valid and 403 once it has expired.
	client := f.v3(t, session.Key, session.Secret)
	unknown := v3.UUID("00000000-0000-0000-0000-000000000001")
	if _, err := client.GetOperation(f.ctx, unknown); !errors.Is(err, v3.ErrNotFound) {
		t.Fatalf("a fresh session key: %v, want ErrNotFound", err)
	}
	f.offset.Store(int64(61 * time.Second))
	if _, err := client.GetOperation(f.ctx, unknown); !errors.Is(err, v3.ErrForbidden) {
		t.Errorf("an expired session key: got %v, want ErrForbidden", err)
	}
}

func TestBadSignaturesAreRefused(t *testing.T) {
	f := start(t, emulator.Options{})
	key, _ := f.root()
	for name, c := range map[string]*v3.Client{
		"unknown key":  f.v3(t, "EXO000000000000000000000000", strings.Repeat("s", 43)),
		"wrong secret": f.v3(t, key, strings.Repeat("s", 43)),
	} {
		if _, err := c.ListAPIKeys(f.ctx); !errors.Is(err, v3.ErrForbidden) {
			t.Errorf("%s: got %v, want ErrForbidden", name, err)
		}
	}
	resp, err := http.Get(f.endpoint + "/api-key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("unsigned: status %d, want a JSON 403", resp.StatusCode)
	}
	// The zone list is public, as at Exoscale.
	zones, err := f.v3(t, "EXO000000000000000000000000", "x").ListZones(f.ctx)
	if err != nil || len(zones.Zones) != 8 {
		t.Errorf("unsigned zone list: %v, %v", zones, err)
	}
}

func TestCatalogueOperationsAnswerByPermission(t *testing.T) {
	f := start(t, emulator.Options{})
	root := f.rootV2(t)
	key, err := root.CreateIAMAccessKey(f.ctx, zone, "compute", egoscale.CreateIAMAccessKeyWithTags([]string{"compute"}))
	if err != nil {
		t.Fatal(err)
	}
	c := f.v3(t, *key.Key, *key.Secret)
	if _, err := c.ListInstances(f.ctx); err != nil {
		t.Errorf("list-instances with the compute tag: %v", err)
	}
	if _, err := c.ListDNSDomains(f.ctx); !errors.Is(err, v3.ErrForbidden) {
		t.Errorf("list-dns-domains without the dns tag: %v, want ErrForbidden", err)
	}
}

func TestFaultsStatsAndLoopbackAdmin(t *testing.T) {
	f := start(t, emulator.Options{Faults: emulator.Faults{ThrottleNext: 1, FailNext: 1, RetryAfterSeconds: 7}})
	key, secret := f.root()
	if code, retryAfter := f.signedGet(t, key, secret); code != 429 || retryAfter != "7" {
		t.Errorf("first call: %d Retry-After %q, want 429 with Retry-After 7", code, retryAfter)
	}
	if code, _ := f.signedGet(t, key, secret); code != 503 {
		t.Errorf("second call: %d, want 503", code)
	}
	if code, _ := f.signedGet(t, key, secret); code != 200 {
		t.Errorf("third call: %d, want 200", code)
	}
	stats := f.server.Stats()
	if stats.Operations["list-zones"] != 3 || stats.Statuses["429"] != 1 || stats.Statuses["503"] != 1 ||
		stats.Keys[key] != 1 || stats.ByOperationStatus["list-zones 200"] != 1 {
		t.Errorf("stats: %+v", stats)
	}

	// Faults at run time, over HTTP.
	req, _ := http.NewRequest("PUT", f.http.URL+"/_emulator/faults", strings.NewReader(`{"errorRate": 1}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("set faults: %v %v", resp, err)
	}
	if code, _ := f.signedGet(t, key, secret); code != 503 {
		t.Errorf("with errorRate 1: %d, want 503", code)
	}

	// Admin endpoints refuse callers from elsewhere.
	recorder := httptest.NewRecorder()
	remote := httptest.NewRequest("GET", "/_emulator/stats", nil)
	remote.RemoteAddr = "192.0.2.10:4711"
	f.server.ServeHTTP(recorder, remote)
	if recorder.Code != http.StatusForbidden {
		t.Errorf("stats from a remote address: %d, want 403", recorder.Code)
	}
}

func TestStatePersistsAcrossRestarts(t *testing.T) {
	stateFile := filepath.Join(t.TempDir(), "state.json")
	f := start(t, emulator.Options{StateFile: stateFile})
	rootKey, rootSecret := f.root()
	key, err := f.v2(t, rootKey, rootSecret).CreateIAMAccessKey(f.ctx, zone, "kept",
		egoscale.CreateIAMAccessKeyWithOperations([]string{"get-access-key"}))
	if err != nil {
		t.Fatal(err)
	}
	f.http.Close()

	again := start(t, emulator.Options{StateFile: stateFile})
	if k, _ := again.root(); k != rootKey {
		t.Errorf("the root key must survive a restart")
	}
	if _, err := again.v2(t, *key.Key, *key.Secret).GetIAMAccessKey(again.ctx, zone, *key.Key); err != nil {
		t.Errorf("a key minted before the restart: %v", err)
	}
}

func TestConcurrentMinting(t *testing.T) {
	f := start(t, emulator.Options{})
	root := f.rootV3(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op, err := root.CreateIAMRole(f.ctx, v3.CreateIAMRoleRequest{Name: "r", Policy: sosPolicy("b")})
			if err == nil {
				_, err = root.CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "k", RoleID: op.Reference.ID})
			}
			if err != nil {
				errs <- err
			}
			_ = i
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(f.server.LiveKeys()); got != 20 {
		t.Errorf("%d live keys, want 20", got)
	}
}

func TestLostResponsesAreAppliedFirst(t *testing.T) {
	f := start(t, emulator.Options{Faults: emulator.Faults{LoseResponseNext: 1, LoseResponseOperations: []string{"create-access-key"}}})
	key, secret := f.root()
	call := func(method, path, body string) *http.Response {
		req, _ := http.NewRequest(method, f.endpoint+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		emulator.Sign(req, []byte(body), key, secret, time.Now().Add(time.Minute))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := call("GET", "/zone", ""); resp.StatusCode != 200 {
		t.Fatalf("a read is never lost: %d", resp.StatusCode)
	}
	if resp := call("POST", "/access-key", `{"name":"lost-answer","operations":["list-zones"]}`); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("create with a lost response: %d, want 504", resp.StatusCode)
	}
	keys := f.server.Keys()
	if len(keys) != 1 || keys[0].Name != "lost-answer" {
		t.Fatalf("the create was applied before its response was lost: keys %+v", keys)
	}
	if resp := call("POST", "/access-key", `{"name":"answered","operations":["list-zones"]}`); resp.StatusCode != 200 {
		t.Fatalf("the fault is spent: %d, want 200", resp.StatusCode)
	}
}

// A role's assume-role-policy says who may assume it, its max-session-ttl
// caps the TTL, and a session key stops working at its expiry and with its
// role.
func TestAssumeRolePolicyAndMaxSessionTTL(t *testing.T) {
	f := start(t, emulator.Options{})
	root := f.rootV3(t)
	// The issuer: an API key whose role may manage and assume roles and use sos.
	issuerRoleID := createRole(t, f, root, "issuer", &v3.IAMPolicy{
		DefaultServiceStrategy: v3.IAMPolicyDefaultServiceStrategyDeny,
		Services:               map[string]v3.IAMServicePolicy{"compute": {Type: "allow"}, "iam": {Type: "allow"}, "sos": {Type: "allow"}},
	})
	issuer, err := root.CreateAPIKey(f.ctx, v3.CreateAPIKeyRequest{Name: "issuer", RoleID: v3.UUID(issuerRoleID)})
	if err != nil {
		t.Fatal(err)
	}
	issuerClient := f.v3(t, issuer.Key, issuer.Secret)
	op, err := issuerClient.CreateIAMRole(f.ctx, v3.CreateIAMRoleRequest{Name: "session", Policy: sosPolicy("a"), MaxSessionTtl: 120,
		AssumeRolePolicy: &v3.IAMAssumeRolePolicy{Rules: []v3.IAMServicePolicyRule{{Action: "allow", Expression: "api_key == '" + issuer.Key + "'"}}}})
	if err == nil {
		op, err = issuerClient.Wait(f.ctx, op, v3.OperationStateSuccess)
	}
	if err != nil {
		t.Fatalf("create the session role: %v", err)
	}
	roleID := op.Reference.ID

	if _, err := root.AssumeIAMRole(f.ctx, roleID, v3.AssumeIAMRoleRequest{Ttl: 60}); !errors.Is(err, v3.ErrForbidden) {
		t.Errorf("a key the assume-role-policy does not name: got %v, want ErrForbidden", err)
	}
	if _, err := issuerClient.AssumeIAMRole(f.ctx, roleID, v3.AssumeIAMRoleRequest{Ttl: 121}); !errors.Is(err, v3.ErrBadRequest) {
		t.Errorf("a TTL above max-session-ttl: got %v, want ErrBadRequest", err)
	}
	session, err := issuerClient.AssumeIAMRole(f.ctx, roleID, v3.AssumeIAMRoleRequest{Ttl: 120})
	if err != nil {
		t.Fatalf("the named key assumes the role: %v", err)
	}
	if !f.allowed(t, session.Key, session.Secret, "get-sos-object", map[string]string{"bucket": "a"}) {
		t.Error("the session key cannot do what the role grants")
	}
	if f.allowed(t, session.Key, session.Secret, "get-sos-object", map[string]string{"bucket": "b"}) {
		t.Error("the session key does more than the role grants")
	}
	f.offset.Store(int64(121 * time.Second))
	if ok, err := emulator.Authorize(f.ctx, f.endpoint, session.Key, session.Secret, "get-sos-object", map[string]string{"bucket": "a"}); ok || err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("an expired session key: got allowed=%v, %v; want a 403 refusal", ok, err)
	}
	f.offset.Store(0)

	// The policy is updated in place; a second session ends with its role.
	op, err = issuerClient.UpdateIAMRole(f.ctx, roleID, v3.UpdateIAMRoleRequest{
		AssumeRolePolicy: &v3.IAMAssumeRolePolicy{Rules: []v3.IAMServicePolicyRule{{Action: "allow", Expression: "api_key == '" + rootKeyOf(f) + "'"}}}})
	if err == nil {
		_, err = issuerClient.Wait(f.ctx, op, v3.OperationStateSuccess)
	}
	if err != nil {
		t.Fatalf("update the assume-role-policy: %v", err)
	}
	if _, err := issuerClient.AssumeIAMRole(f.ctx, roleID, v3.AssumeIAMRoleRequest{Ttl: 60}); !errors.Is(err, v3.ErrForbidden) {
		t.Errorf("the issuer after the update: got %v, want ErrForbidden", err)
	}
	second, err := root.AssumeIAMRole(f.ctx, roleID, v3.AssumeIAMRoleRequest{Ttl: 60})
	if err != nil {
		t.Fatalf("the key the updated policy names, now allowed: %v", err)
	}
	op, err = root.DeleteIAMRole(f.ctx, roleID)
	if err == nil {
		_, err = root.Wait(f.ctx, op, v3.OperationStateSuccess)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.Authorize(f.ctx, f.endpoint, second.Key, second.Secret, "get-sos-object", map[string]string{"bucket": "a"}); err == nil {
		t.Error("a session key of a deleted role still authenticates")
	}

	bad := v3.CreateIAMRoleRequest{Name: "bad", AssumeRolePolicy: &v3.IAMAssumeRolePolicy{Rules: []v3.IAMServicePolicyRule{{Action: "allow", Expression: "caller.nope("}}}}
	if _, err := root.CreateIAMRole(f.ctx, bad); !errors.Is(err, v3.ErrBadRequest) {
		t.Errorf("an invalid assume-role-policy: got %v, want ErrBadRequest", err)
	}
}

// Roles are read while they are updated: under -race, an answer encoded
// from the role itself rather than a copy is a data race.
func TestRolesReadWhileUpdated(t *testing.T) {
	f := start(t, emulator.Options{})
	root := f.rootV3(t)
	roleID := createRole(t, f, root, "busy", sosPolicy("a"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 30; i++ {
			if _, err := root.UpdateIAMRole(f.ctx, v3.UUID(roleID), v3.UpdateIAMRoleRequest{Labels: v3.Labels{"n": strconv.Itoa(i)}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 30; i++ {
		if _, err := root.ListIAMRoles(f.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := root.GetIAMRole(f.ctx, v3.UUID(roleID)); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

func rootKeyOf(f *fixture) string {
	key, _ := f.root()
	return key
}
