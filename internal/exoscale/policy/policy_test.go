package policy

import (
	"strings"
	"testing"

	"github.com/exokey/exokey/internal/exoscale/catalog"
)

func rules(service string, r ...PolicyRule) Policy {
	return Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{service: {Type: "rules", Rules: r}}}
}

func lookup(t testing.TB, name string) catalog.Operation {
	t.Helper()
	o, ok := catalog.Default().Lookup(name)
	if !ok {
		t.Fatalf("no operation %s in the catalogue", name)
	}
	return o
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
			compiled, err := Compile(tc.policy, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			o := lookup(t, tc.operation)
			if got := compiled.Allows(o.Service, o.Name, tc.params); got != tc.want {
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
			_, err := Compile(tc.policy, catalog.Default())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
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
		compiled, err := Compile(p, cat)
		if err != nil {
			return
		}
		allowed := compiled.Allows(target.Service, operation, map[string]string{"bucket": bucket})
		if allowed && strings.TrimSpace(expression) == "false" {
			t.Fatalf("a false rule allowed %q", operation)
		}
	})
}

func TestEqual(t *testing.T) {
	sos := rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-sos-object']"})
	for _, tc := range []struct {
		name string
		a, b Policy
		want bool
	}{
		{"same", sos, rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-sos-object']"}), true},
		{"empty strategy is deny", Policy{}, Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{}}, true},
		{"empty rules and resources are none", rules("sos", PolicyRule{Action: "allow", Expression: "true", Resources: []string{}}),
			rules("sos", PolicyRule{Action: "allow", Expression: "true"}), true},
		{"widened default", sos, Policy{DefaultServiceStrategy: "allow", Services: sos.Services}, false},
		{"another expression", sos, rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['put-sos-object']"}), false},
		{"another action", sos, rules("sos", PolicyRule{Action: "deny", Expression: "operation in ['get-sos-object']"}), false},
		{"rule order matters", rules("sos", PolicyRule{Action: "deny", Expression: "true"}, PolicyRule{Action: "allow", Expression: "true"}),
			rules("sos", PolicyRule{Action: "allow", Expression: "true"}, PolicyRule{Action: "deny", Expression: "true"}), false},
		{"a service more", sos, Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{
			"sos": sos.Services["sos"], "compute": {Type: "allow"}}}, false},
		{"no services against deny-all", Policy{DefaultServiceStrategy: "deny"}, sos, false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Equal = %v, want %v", tc.name, got, tc.want)
		}
	}
}
