package emulator

import (
	"strings"
	"testing"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

func op(t testing.TB, name string) catalog.Operation {
	t.Helper()
	o, ok := catalog.Default().Lookup(name)
	if !ok {
		t.Fatalf("no operation %s in the catalogue", name)
	}
	return o
}

func mustCompile(t testing.TB, p policy.Policy) *policy.Compiled {
	t.Helper()
	c, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rules(service string, r ...policy.PolicyRule) policy.Policy {
	return policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{service: {Type: "rules", Rules: r}}}
}

func TestLegacyRestrictions(t *testing.T) {
	g := legacyGrant{cat: catalog.Default(), operations: map[string]bool{"get-sos-object": true, "list-instances": true}, buckets: []string{"b"}}
	for _, tc := range []struct {
		operation string
		params    map[string]string
		want      bool
	}{
		{"get-sos-object", map[string]string{"bucket": "b"}, true},
		{"get-object", map[string]string{"bucket": "b"}, true}, // an S3 action, held through its legacy name
		{"head-object", map[string]string{"bucket": "b"}, true},
		{"put-object", map[string]string{"bucket": "b"}, false},
		{"get-sos-object", map[string]string{"bucket": "c"}, false},
		{"get-sos-object", nil, false},
		{"list-instances", nil, true}, // resources restrict sos only
		{"delete-instance", nil, false},
	} {
		if got := g.allows(op(t, tc.operation), policy.Request{Parameters: policy.Parameters(tc.params)}); got != tc.want {
			t.Errorf("%s %v: %v, want %v", tc.operation, tc.params, got, tc.want)
		}
	}
	if !(legacyGrant{unrestricted: true}).allows(op(t, "delete-instance"), policy.Request{}) {
		t.Error("an unrestricted key may do anything")
	}
}

func TestInheritance(t *testing.T) {
	cat := catalog.Default()
	legacy := func(buckets []string, ops ...string) legacyGrant {
		g := legacyGrant{cat: cat, operations: map[string]bool{}, buckets: buckets}
		for _, o := range ops {
			g.operations[o] = true
		}
		return g
	}
	role := func(p policy.Policy) roleGrant {
		return roleGrant{cat: cat, levels: policy.Levels{Role: mustCompile(t, p)}}
	}
	sosRule := func(expr string) roleGrant {
		return role(rules("sos", policy.PolicyRule{Action: "allow", Expression: expr}))
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
		{"another bucket", legacy([]string{"b"}, "get-sos-object"), legacy([]string{"c"}, "get-sos-object"), []string{"get-object", "get-sos-object", "head-object"}},
		{"dropping the bucket", legacy([]string{"b"}, "get-sos-object"), legacy(nil, "get-sos-object"), []string{"get-object", "get-sos-object", "head-object"}},
		{"role within legacy parent", legacy([]string{"b"}, "get-sos-object"), sosRule("operation in ['get-object', 'head-object'] && parameters.bucket == 'b'"), nil},
		{"role beyond legacy parent", legacy([]string{"b"}, "get-sos-object"), sosRule("operation == 'get-object'"), []string{"get-object"}},
		{"the organisation policy gates both alike", roleGrant{cat: cat, levels: policy.Levels{
			Organization: mustCompile(t, policy.Policy{DefaultServiceStrategy: "allow", Services: map[string]policy.ServicePolicy{"sos": {Type: "deny"}}}),
			Role:         mustCompile(t, policy.Policy{})}}, sosRule("operation == 'get-object'"), nil},
		{"legacy within role parent", sosRule("parameters.bucket == 'b'"), legacy([]string{"b"}, "get-sos-object", "put-sos-object"), nil},
		{"service allow beyond rules", sosRule("operation == 'get-object'"), role(policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{"sos": {Type: "allow"}}}), nil /* checked below */},
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
