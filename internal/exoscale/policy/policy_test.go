package policy

import (
	"slices"
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
		{"rule allows listed operation", rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-object']"}), "get-object", nil, true},
		{"rule does not allow others", rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-object']"}), "put-object", nil, false},
		{"bucket matches", rules("sos", PolicyRule{Action: "allow", Expression: "parameters.bucket == 'b'"}), "get-object", map[string]string{"bucket": "b"}, true},
		{"bucket differs", rules("sos", PolicyRule{Action: "allow", Expression: "parameters.bucket == 'b'"}), "get-object", map[string]string{"bucket": "c"}, false},
		{"missing parameter does not match", rules("sos", PolicyRule{Action: "allow", Expression: "parameters.bucket == 'b'"}), "get-object", nil, false},
		{"first matching rule decides: deny", rules("sos",
			PolicyRule{Action: "deny", Expression: "operation == 'delete-object'"},
			PolicyRule{Action: "allow", Expression: "true"}), "delete-object", nil, false},
		{"first matching rule decides: allow", rules("sos",
			PolicyRule{Action: "deny", Expression: "operation == 'delete-object'"},
			PolicyRule{Action: "allow", Expression: "true"}), "get-object", nil, true},
		{"no rule matches: deny", rules("sos", PolicyRule{Action: "allow", Expression: "false"}), "get-object", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compiled, err := Compile(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			o := lookup(t, tc.operation)
			if got := compiled.Allows(o, tc.params); got != tc.want {
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
		{"bad type", Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"sos": {Type: "maybe"}}}, "type must be"},
		{"rules without rules", Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{"sos": {Type: "rules"}}}, "at least one rule"},
		{"bad action", rules("sos", PolicyRule{Action: "permit", Expression: "true"}), "action"},
		{"syntax error", rules("sos", PolicyRule{Action: "allow", Expression: "operation =="}), "expression"},
		{"unknown variable", rules("sos", PolicyRule{Action: "allow", Expression: "caller.key == 'x'"}), "expression"},
		{"not boolean", rules("sos", PolicyRule{Action: "allow", Expression: "operation"}), "must be a boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.policy)
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
	f.Add("operation in ['get-object'] && parameters.bucket == 'b'", "get-object", "b")
	f.Add("parameters.bucket.startsWith('team-')", "list-objects", "team-a")
	f.Add("size(parameters) > 0 || operation.matches('^get-')", "put-object", "")
	cat := catalog.Default()
	target, _ := cat.Lookup("get-object")
	f.Fuzz(func(t *testing.T, expression, operation, bucket string) {
		p := rules("sos", PolicyRule{Action: "allow", Expression: expression})
		compiled, err := Compile(p)
		if err != nil {
			return
		}
		allowed := compiled.Decide(Request{Class: target.Class, Operation: operation, Parameters: map[string]any{"bucket": bucket},
			Unknown: RequestFacts}).Allowed
		if allowed && strings.TrimSpace(expression) == "false" {
			t.Fatalf("a false rule allowed %q", operation)
		}
	})
}

func TestEqual(t *testing.T) {
	sos := rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-object']"})
	for _, tc := range []struct {
		name string
		a, b Policy
		want bool
	}{
		{"same", sos, rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['get-object']"}), true},
		{"an empty policy allows all", Policy{}, Policy{DefaultServiceStrategy: "allow", Services: map[string]ServicePolicy{}}, true},
		{"an empty policy is not deny-all", Policy{}, Policy{DefaultServiceStrategy: "deny"}, false},
		{"no strategy beside services is deny", Policy{Services: sos.Services}, sos, true},
		{"empty rules and resources are none", rules("sos", PolicyRule{Action: "allow", Expression: "true", Resources: []string{}}),
			rules("sos", PolicyRule{Action: "allow", Expression: "true"}), true},
		{"widened default", sos, Policy{DefaultServiceStrategy: "allow", Services: sos.Services}, false},
		{"another expression", sos, rules("sos", PolicyRule{Action: "allow", Expression: "operation in ['put-object']"}), false},
		{"another action", sos, rules("sos", PolicyRule{Action: "deny", Expression: "operation in ['get-object']"}), false},
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

// TestExoscaleSemantics holds the policy language as Exoscale documents it
// (docs/reference/exoscale-facts.md): each case fails if its part of the
// evaluator is taken out.
func TestExoscaleSemantics(t *testing.T) {
	owner := Policy{}
	realRole := Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{
		"dbaas": {Type: "rules", Rules: []PolicyRule{
			{Action: "deny", Expression: "resources.dbaas_service.name == 'prod'"},
			{Action: "allow", Expression: "true"},
		}},
		"compute": {Type: "rules", Rules: []PolicyRule{
			{Action: "allow", Expression: "source_ip.inIpRange('10.0.0.0/8')"},
		}},
		"compute-legacy": {Type: "allow"},
		"sos": {Type: "rules", Rules: []PolicyRule{
			{Action: "deny", Expression: "parameters.has('bucket') && parameters.bucket.startsWith('secret-')"},
			{Action: "allow", Expression: "api_key == 'EXOowner' && operation in ['get-object', 'list-objects']"},
			{Action: "allow", Expression: "timestamp(now) < timestamp('2000-01-01T00:00:00Z')"},
		}},
		"dns": {Type: "rules", Rules: []PolicyRule{
			{Action: "allow", Expression: "parameters.missing_field == 'x'"}, // errors: skipped
			{Action: "allow", Expression: "parameters.public_ip_assignment == 'inet4'"},
		}},
	}}
	for _, tc := range []struct {
		name    string
		policy  Policy
		req     Request
		allowed bool
		depends []string
	}{
		{"the Owner role's empty policy allows anything", owner, Request{Class: "compute", Operation: "create-instance"}, true, nil},
		{"empty allows sos too", owner, Request{Class: "sos", Operation: "put-object", Parameters: map[string]any{"bucket": "b"}}, true, nil},
		{"resources.TYPE.FIELD denies", realRole, Request{Class: "dbaas", Operation: "delete-dbaas-service",
			Resources: map[string]any{"dbaas_service": map[string]any{"name": "prod"}}}, false, nil},
		{"resources.TYPE.FIELD passes", realRole, Request{Class: "dbaas", Operation: "delete-dbaas-service",
			Resources: map[string]any{"dbaas_service": map[string]any{"name": "dev"}}}, true, nil},
		{"resources unknown: depends", realRole, Request{Class: "dbaas", Operation: "delete-dbaas-service", Unknown: RequestFacts}, false, []string{"resources"}},
		{"source_ip in range", realRole, Request{Class: "compute", Operation: "list-instances", SourceIP: "10.1.2.3"}, true, nil},
		{"source_ip out of range", realRole, Request{Class: "compute", Operation: "list-instances", SourceIP: "192.0.2.1"}, false, nil},
		{"source_ip unknown: depends", realRole, Request{Class: "compute", Operation: "list-instances", Unknown: RequestFacts}, false, []string{"source_ip"}},
		{"any class name: compute-legacy", realRole, Request{Class: "compute-legacy", Operation: "x"}, true, nil},
		{"parameters.has and a deny first", realRole, Request{Class: "sos", Operation: "get-object", APIKey: "EXOowner",
			Parameters: map[string]any{"bucket": "secret-x"}}, false, nil},
		{"api_key names the caller", realRole, Request{Class: "sos", Operation: "get-object", APIKey: "EXOowner",
			Parameters: map[string]any{"bucket": "b"}}, true, nil},
		{"another api_key", realRole, Request{Class: "sos", Operation: "get-object", APIKey: "EXOother",
			Parameters: map[string]any{"bucket": "b"}, Now: "2026-12-04T00:00:00Z"}, false, nil},
		{"an erroring rule is skipped, the next decides", realRole, Request{Class: "dns", Operation: "x",
			Parameters: map[string]any{"public_ip_assignment": "inet4"}}, true, nil},
		{"a class not in the policy falls to the default", realRole, Request{Class: "iam", Operation: "create-api-key"}, false, nil},
		{"an operation no role gates", realRole, Request{Operation: "get-operation"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compiled, err := Compile(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			got := compiled.Decide(tc.req)
			if got.Allowed != tc.allowed || !slices.Equal(got.DependsOn, tc.depends) {
				t.Errorf("Decide = %+v, want allowed %v depending on %v", got, tc.allowed, tc.depends)
			}
			if len(tc.depends) > 0 && !strings.Contains(got.Reason, "depends on "+tc.depends[0]) {
				t.Errorf("the reason does not say what it depends on: %s", got.Reason)
			}
		})
	}
}

func TestOrganisationPolicyIsASecondGate(t *testing.T) {
	role, err := Compile(Policy{})
	if err != nil {
		t.Fatal(err)
	}
	noSOS, err := Compile(Policy{DefaultServiceStrategy: "allow", Services: map[string]ServicePolicy{"sos": {Type: "deny"}}})
	if err != nil {
		t.Fatal(err)
	}
	get := Request{Class: "sos", Operation: "get-object", Parameters: map[string]any{"bucket": "b"}}
	if !(Levels{Role: role}).Decide(get).Allowed {
		t.Fatal("without an organisation policy the Owner role allows get-object")
	}
	decision := Levels{Organization: noSOS, Role: role}.Decide(get)
	if decision.Allowed || !strings.HasPrefix(decision.Reason, "organisation policy: ") {
		t.Errorf("an organisation policy denying sos must deny, and say so: %+v", decision)
	}
	if !(Levels{Organization: noSOS, Role: role}).Decide(Request{Class: "compute", Operation: "list-instances"}).Allowed {
		t.Error("the organisation policy allows compute")
	}
	holding := Holds(Levels{Organization: noSOS, Role: role}, catalog.Default(), "EXOissuer")
	if slices.Contains(holding.Held, "get-object") || slices.Contains(holding.Held, "get-sos-object") || !slices.Contains(holding.Held, "list-instances") {
		t.Errorf("what both levels allow: sos held? %v", holding.Held)
	}
}

func TestHoldsExplainsWhatDependsOnTheRequest(t *testing.T) {
	compiled, err := Compile(Policy{DefaultServiceStrategy: "deny", Services: map[string]ServicePolicy{
		"compute": {Type: "rules", Rules: []PolicyRule{{Action: "allow", Expression: "source_ip.inIpRange('10.0.0.0/8')"}}},
		"sos":     {Type: "rules", Rules: []PolicyRule{{Action: "allow", Expression: "operation in ['get-object', 'head-object'] && parameters.bucket == 'b'"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	holding := Holds(compiled, catalog.Default(), "EXOissuer")
	if slices.Contains(holding.Held, "list-instances") {
		t.Error("a grant that depends on the source address is not counted as held")
	}
	if got := holding.Depends["list-instances"]; !slices.Equal(got, []string{"source_ip"}) {
		t.Errorf("list-instances depends on %v, want source_ip", got)
	}
	for _, name := range []string{"get-object", "head-object", "get-sos-object"} {
		if !slices.Contains(holding.Held, name) {
			t.Errorf("%s is held (get-sos-object through both of its S3 actions)", name)
		}
	}
	if slices.Contains(holding.Held, "put-object") || slices.Contains(holding.Held, "list-sos-bucket") {
		t.Errorf("held too much: %v", holding.Held)
	}
}
