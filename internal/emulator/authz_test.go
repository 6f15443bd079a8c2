package emulator

import (
	"strings"
	"testing"

	"github.com/exokey/exokey/internal/exoscale/catalog"
)

func op(t testing.TB, name string) catalog.Operation {
	t.Helper()
	o, ok := catalog.Default().Lookup(name)
	if !ok {
		t.Fatalf("no operation %s in the catalogue", name)
	}
	return o
}

func mustCompile(t testing.TB, p Policy) *compiledPolicy {
	t.Helper()
	c, err := compilePolicy(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rules(service string, r ...PolicyRule) Policy {
	return Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{service: {Type: "rules", Rules: r}}}
}

func TestPolicyEvaluation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    Policy
		operation string
		params    map[string]string
		want      bool
	}{
		{"default deny", Policy{DefaultServiceStrategy: "deny"}, "list-instances", nil, false},
		{"default allow", Policy{DefaultServiceStrategy: "allow"}, "list-instances", nil, true},
		{"service allow", Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"compute": {Type: "allow"}}}, "list-instances", nil, true},
		{"service deny beats default allow", Policy{DefaultServiceStrategy: "allow", Services: map[string]ServicePolicy{"compute": {Type: "deny"}}}, "list-instances", nil, false},
		{"other service falls to default", Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"compute": {Type: "allow"}}}, "list-dns-domains", nil, false},
		{"rule allows listed operation", rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-sos-object']"}), "get-sos-object", nil, true},
		{"rule does not allow others", rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-sos-object']"}), "put-sos-object", nil, false},
		{"bucket matches", rules("sos", PolicyRule{Action: "allow", Expression: "parameters.bucket == 'b'"}), "get-sos-object", map[string]string{"bucket": "b"}, true},
		{"bucket differs", rules("sos", PolicyRule{Action: "allow", Expression: "parameters.bucket == 'b'"}), "get-sos-object", map[string]string{"bucket": "c"}, false},
		{"missing parameter does not match", rules("sos", PolicyRule{Action: "allow", Expression: "parameters.bucket == 'b'"}), "get-sos-object", nil, false},
		{"first matching rule decides: deny", rules("sos",
			PolicyRule{Action: "deny", Expression: "operation == 'delete-sos-object'"},
			PolicyRule{Action: "allow", Expression: "true"}), "delete-sos-object", nil, false},
		{"first matching rule decides: allow", rules("sos",
			PolicyRule{Action: "deny", Expression: "operation == 'delete-sos-object'"},
			PolicyRule{Action: "allow", Expression: "true"}), "get-sos-object", nil, true},
		{"no rule matches: deny", rules("sos", PolicyRule{Action: "allow", Expression: "false"}), "get-sos-object", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := roleGrant{policy: mustCompile(t, tc.policy)}
			if got := g.allows(op(t, tc.operation), tc.params); got != tc.want {
				t.Errorf("allows(%s, %v) = %v, want %v", tc.operation, tc.params, got, tc.want)
			}
		})
	}
}

func TestPolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  Policy
		wantErr string
	}{
		{"bad default", Policy{DefaultServiceStrategy: "sometimes"}, "default-service-strategy"},
		{"unknown service", Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"nope": {Type: "allow"}}}, `unknown service "nope"`},
		{"bad type", Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"sos": {Type: "maybe"}}}, "type must be"},
		{"rules without rules", Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"sos": {Type: "rules"}}}, "at least one rule"},
		{"bad action", rules("sos", PolicyRule{Action: "permit", Expression: "true"}), "action"},
		{"syntax error", rules("sos", PolicyRule{Action: "allow", Expression: "operation =="}), "expression"},
		{"unknown variable", rules("sos", PolicyRule{Action: "allow", Expression: "resource == 'x'"}), "expression"},
		{"not boolean", rules("sos", PolicyRule{Action: "allow", Expression: "operation"}), "must be a boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compilePolicy(tc.policy, catalog.Default())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLegacyRestrictions(t *testing.T) {
	g := legacyGrant{operations: map[string]bool{"get-sos-object": true, "list-instances": true}, buckets: []string{"b"}}
	for _, tc := range []struct {
		operation string
		params    map[string]string
		want      bool
	}{
		{"get-sos-object", map[string]string{"bucket": "b"}, true},
		{"get-sos-object", map[string]string{"bucket": "c"}, false},
		{"get-sos-object", nil, false},
		{"list-instances", nil, true}, // resources restrict sos only
		{"delete-instance", nil, false},
	} {
		if got := g.allows(op(t, tc.operation), tc.params); got != tc.want {
			t.Errorf("%s %v: %v, want %v", tc.operation, tc.params, got, tc.want)
		}
	}
	if !(legacyGrant{unrestricted: true}).allows(op(t, "delete-instance"), nil) {
		t.Error("an unrestricted key may do anything")
	}
}

func TestInheritance(t *testing.T) {
	cat := catalog.Default()
	legacy := func(buckets []string, ops ...string) legacyGrant {
		g := legacyGrant{operations: map[string]bool{}, buckets: buckets}
		for _, o := range ops {
			g.operations[o] = true
		}
		return g
	}
	role := func(p Policy) roleGrant { return roleGrant{policy: mustCompile(t, p)} }
	sosRule := func(expr string) roleGrant {
		return role(rules("sos", PolicyRule{Action: "allow", Expression: expr}))
	}
	for _, tc := range []struct {
		name          string
		parent, child grant
		wantMissing   []string
	}{
		{"subset of operations", legacy(nil, "a-b", "list-instances", "get-sos-object"), legacy(nil, "list-instances"), nil},
		{"more operations", legacy(nil, "list-instances"), legacy(nil, "list-instances", "delete-instance"), []string{"delete-instance"}},
		{"unrestricted child of restricted parent", legacy(nil, "list-instances"), legacyGrant{unrestricted: true}, nil /* checked below */},
		{"same bucket", legacy([]string{"b"}, "get-sos-object"), legacy([]string{"b"}, "get-sos-object"), nil},
		{"another bucket", legacy([]string{"b"}, "get-sos-object"), legacy([]string{"c"}, "get-sos-object"), []string{"get-sos-object"}},
		{"dropping the bucket", legacy([]string{"b"}, "get-sos-object"), legacy(nil, "get-sos-object"), []string{"get-sos-object"}},
		{"role within legacy parent", legacy([]string{"b"}, "get-sos-object"), sosRule("operation == 'get-sos-object' && parameters.bucket == 'b'"), nil},
		{"role beyond legacy parent", legacy([]string{"b"}, "get-sos-object"), sosRule("operation == 'get-sos-object'"), []string{"get-sos-object"}},
		{"legacy within role parent", sosRule("parameters.bucket == 'b'"), legacy([]string{"b"}, "get-sos-object", "put-sos-object"), nil},
		{"service allow beyond rules", sosRule("operation == 'get-sos-object'"), role(Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"sos": {Type: "allow"}}}), nil /* checked below */},
	} {
		t.Run(tc.name, func(t *testing.T) {
			missing := beyond(tc.parent, tc.child, cat)
			switch {
			case tc.wantMissing == nil && strings.HasPrefix(tc.name, "unrestricted"),
				tc.wantMissing == nil && strings.HasPrefix(tc.name, "service allow"):
				if len(missing) < 5 {
					t.Errorf("a much wider child must be refused; missing %v", missing)
				}
			case strings.Join(missing, ",") != strings.Join(tc.wantMissing, ","):
				t.Errorf("missing %v, want %v", missing, tc.wantMissing)
			}
		})
	}
}

func TestRouter(t *testing.T) {
	r := newRouter(catalog.Default())
	for _, tc := range []struct {
		method, path string
		wantOp       string
		wantParams   map[string]string
	}{
		{"GET", "/v2/zone", "list-zones", nil},
		{"GET", "/v2/iam-role/abc", "get-iam-role", map[string]string{"id": "abc"}},
		{"PUT", "/v2/iam-role/abc:policy", "update-iam-role-policy", map[string]string{"id": "abc"}},
		{"PUT", "/v2/iam-role/abc", "update-iam-role", map[string]string{"id": "abc"}},
		{"POST", "/v2/iam-role/abc/assume", "assume-iam-role", map[string]string{"id": "abc"}},
		{"DELETE", "/v2/access-key/EXO1", "revoke-access-key", map[string]string{"key": "EXO1"}},
		{"GET", "/v2/nothing-here", "", nil},
	} {
		got, params, ok := r.match(tc.method, tc.path)
		if got.Name != tc.wantOp || ok != (tc.wantOp != "") {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, got.Name, tc.wantOp)
		}
		for k, v := range tc.wantParams {
			if params[k] != v {
				t.Errorf("%s %s: param %s=%q, want %q", tc.method, tc.path, k, params[k], v)
			}
		}
	}
}

// FuzzPolicyEvaluation feeds arbitrary expressions and call inputs to the
// policy compiler and evaluator: they must refuse or answer, never panic or
// run away (the cost limit), and a rule that compiles to "false" never allows.
func FuzzPolicyEvaluation(f *testing.F) {
	f.Add("operation in ['get-sos-object'] && parameters.bucket == 'b'", "get-sos-object", "b")
	f.Add("parameters.bucket.startsWith('team-')", "list-sos-bucket", "team-a")
	f.Add("size(parameters) > 0 || operation.matches('^get-')", "put-sos-object", "")
	cat := catalog.Default()
	target, _ := cat.Lookup("get-sos-object")
	f.Fuzz(func(t *testing.T, expression, operation, bucket string) {
		p := rules("sos", PolicyRule{Action: "allow", Expression: expression})
		compiled, err := compilePolicy(p, cat)
		if err != nil {
			return
		}
		target.Name = operation
		allowed := roleGrant{policy: compiled}.allows(target, map[string]string{"bucket": bucket})
		if allowed && strings.TrimSpace(expression) == "false" {
			t.Fatalf("a false rule allowed %q", operation)
		}
	})
}
