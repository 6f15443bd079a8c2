package exoscale_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exokey/exokey/internal/emulator"
	"github.com/exokey/exokey/internal/exoscale"
)

// Session credentials over HTTP: a role only the issuer's key may assume,
// capped TTLs, credentials that work for what the role grants and end with
// the role.
func TestSessionCredentials(t *testing.T) {
	e := newEnv(t)
	issuer := e.rootKeys(t, exoscale.APIIAMv3)
	spec := exoscale.KeySpec{Name: "session-role", Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:a"},
		Labels: map[string]string{"owner": "test"}}
	role, err := issuer.CreateSessionRole(e.ctx, spec, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if role.RoleID == "" || role.ID != "" {
		t.Fatalf("a session role is a role without a key: %+v", role)
	}
	if found, err := issuer.FindByName(e.ctx, spec.Name); err != nil || len(found) != 1 || found[0].RoleID != role.RoleID {
		t.Errorf("FindByName: %+v, %v; want the role", found, err)
	}
	if got, err := issuer.GetRole(e.ctx, role.RoleID); err != nil || got.Name != spec.Name || got.Labels["owner"] != "test" {
		t.Errorf("GetRole: %+v, %v; want the role", got, err)
	}

	before := time.Now()
	session, err := issuer.Assume(e.ctx, role.RoleID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if session.ExpiresAt.Before(before.Add(59*time.Second)) || session.ExpiresAt.After(time.Now().Add(61*time.Second)) {
		t.Errorf("expires at %s, want a minute from now", session.ExpiresAt)
	}
	if !e.allowed(t, session.Credential, "get-sos-object", map[string]string{"bucket": "a"}) ||
		e.allowed(t, session.Credential, "get-sos-object", map[string]string{"bucket": "b"}) {
		t.Error("the session credential does not hold exactly what the role grants")
	}

	if _, err := issuer.Assume(e.ctx, role.RoleID, 3*time.Minute); !exoscale.IsTerminal(err) {
		t.Errorf("a TTL above the role's cap: got %v, want a terminal error", err)
	}
	// Another key of the organisation, allowed to assume roles but not to
	// administer them, is not named by the role's assume-role-policy.
	other, err := issuer.Create(e.ctx, exoscale.KeySpec{Name: "other", Tags: []string{"sos"},
		Operations: []string{"assume-iam-role", "get-operation"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys(t, exoscale.APIIAMv3, other.ID, other.Secret.Reveal()).Assume(e.ctx, role.RoleID, time.Minute); !exoscale.IsTerminal(err) {
		t.Errorf("a key the assume-role-policy does not name: got %v, want a terminal error", err)
	}

	// The issuer's credentials are replaced by another key that may
	// administer roles: the role is pointed at it on its first assume (a
	// key that may update a role could always rewrite its policy).
	successor, err := issuer.Create(e.ctx, exoscale.KeySpec{Name: "successor", Tags: []string{"iam", "sos"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys(t, exoscale.APIIAMv3, successor.ID, successor.Secret.Reveal()).Assume(e.ctx, role.RoleID, time.Minute); err != nil {
		t.Errorf("the issuer's new key: %v", err)
	}

	if err := issuer.Revoke(e.ctx, session.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.Authorize(e.ctx, e.endpoint, session.ID, session.Secret.Reveal(), "get-sos-object", map[string]string{"bucket": "a"}); err == nil {
		t.Error("the session credential outlives its role")
	}
	if found, _ := issuer.FindByName(e.ctx, spec.Name); len(found) != 0 {
		t.Errorf("the role is left: %+v", found)
	}
	if _, err := issuer.GetRole(e.ctx, role.RoleID); !errors.Is(err, exoscale.ErrNotFound) {
		t.Errorf("GetRole of a deleted role: got %v, want ErrNotFound", err)
	}

	legacy := e.rootKeys(t, exoscale.APIAccessKeyV2)
	if _, err := legacy.CreateSessionRole(e.ctx, spec, time.Minute); !errors.Is(err, exoscale.ErrNoSessions) {
		t.Errorf("legacy: got %v, want ErrNoSessions", err)
	}
}

// A session whose role cannot be assumed leaves no role behind.
func TestCreateSessionDeletesARoleItCannotAssume(t *testing.T) {
	e := newEnv(t)
	root := e.rootKeys(t, exoscale.APIIAMv3)
	minter, err := root.Create(e.ctx, exoscale.KeySpec{Name: "no-assume", Tags: []string{"sos"},
		Operations: []string{"create-iam-role", "delete-iam-role", "delete-api-key", "get-operation"}})
	if err != nil {
		t.Fatal(err)
	}
	keys := e.keys(t, exoscale.APIIAMv3, minter.ID, minter.Secret.Reveal())
	_, err = exoscale.CreateSession(e.ctx, keys, exoscale.KeySpec{Name: "unassumable", Tags: []string{"sos"}}, time.Hour)
	if !exoscale.IsTerminal(err) || !exoscale.NothingCreated(err) {
		t.Fatalf("got %v, want a terminal error that left nothing", err)
	}
	if found, err := root.FindByName(e.ctx, "unassumable"); err != nil || len(found) != 0 {
		t.Errorf("the role is left: %+v, %v", found, err)
	}
}

// A session role written before its assume-role-policy named the issuer
// through api_key (it read caller.key, which nothing at Exoscale
// documents) is pointed at the issuer's key again at its next renewal.
func TestSessionRolesOfTheEarlierBindingAreRepointed(t *testing.T) {
	stateFile := filepath.Join(t.TempDir(), "state.json")
	first, err := emulator.New(emulator.Options{StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	rootKey, rootSecret := first.Root()
	ts := httptest.NewServer(first)
	e := &env{server: first, endpoint: ts.URL + "/v2", ctx: context.Background()}
	role, err := e.rootKeys(t, exoscale.APIIAMv3).CreateSessionRole(e.ctx, exoscale.KeySpec{Name: "old-role", Operations: []string{"list-zones"}}, time.Hour)
	ts.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.ReplaceAll(string(raw), "api_key == ", "caller.key == ")
	if old == string(raw) {
		t.Fatal("the state holds no api_key binding to rewrite")
	}
	if err := os.WriteFile(stateFile, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := emulator.New(emulator.Options{StateFile: stateFile, RootKey: rootKey, RootSecret: rootSecret})
	if err != nil {
		t.Fatal(err)
	}
	ts = httptest.NewServer(second)
	t.Cleanup(ts.Close)
	e = &env{server: second, endpoint: ts.URL + "/v2", ctx: context.Background()}
	if _, err := e.rootKeys(t, exoscale.APIIAMv3).Assume(e.ctx, role.RoleID, time.Minute); err != nil {
		t.Fatalf("renewing a session of a role with the earlier binding: %v", err)
	}
}
