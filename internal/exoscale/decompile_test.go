package exoscale

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

func TestDecompilePolicyRoundTrips(t *testing.T) {
	cat := catalog.Default()
	for name, spec := range exampleSpecs {

		t.Run(name, func(t *testing.T) {
			compiled, err := CompilePolicy(spec, cat)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecompilePolicy(compiled, cat)
			if err != nil {
				t.Fatalf("decompile %s: %v", compiled.Describe(), err)
			}
			want, _ := ResolveV3(spec, cat)
			back, err := ResolveV3(got, cat)
			if err != nil {
				t.Fatalf("the decompiled spec %+v does not resolve: %v", got, err)
			}
			if !reflect.DeepEqual(want, back) {
				t.Errorf("round trip changed the restrictions:\nwant %+v\ngot  %+v", want, back)
			}
		})
	}
}

// Policies written by hand, in shapes exokey's compiler does not write but
// reads the same.
func TestDecompilePolicyReadsHandWrittenShapes(t *testing.T) {
	cat := catalog.Default()
	rules := func(exprs ...string) policy.ServicePolicy {
		sp := policy.ServicePolicy{Type: "rules"}
		for _, e := range exprs {
			sp.Rules = append(sp.Rules, policy.PolicyRule{Action: "allow", Expression: e})
		}
		return sp
	}
	for name, tc := range map[string]struct {
		policy policy.Policy
		want   KeySpec
	}{
		"rules split and reversed": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"compute": rules("operation == 'list-instances'", "'get-instance' == operation"),
			}},
			want: KeySpec{Operations: []string{"get-instance", "list-instances"}},
		},
		"bucket by index": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"sos": rules("parameters['bucket'] in ['a', 'b'] && operation == 'get-sos-object'"),
			}},
			want: KeySpec{Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:a", "sos/bucket:b"}},
		},
		"explicit deny and no default": {
			policy: policy.Policy{Services: map[string]policy.ServicePolicy{
				"dns": {Type: "allow"}, "compute": {Type: "deny"},
			}},
			want: KeySpec{Tags: []string{"dns"}},
		},
		"a whole-service rule covers the others": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"sos": rules("parameters.bucket == 'a' && operation == 'get-sos-object'", "parameters.bucket == 'a'"),
			}},
			want: KeySpec{Tags: []string{"sos"}, Resources: []string{"sos/bucket:a"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := DecompilePolicy(tc.policy, cat)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecompilePolicyRefusesWhatItCannotExpress(t *testing.T) {
	cat := catalog.Default()
	rule := func(action, expr string) policy.ServicePolicy {
		return policy.ServicePolicy{Type: "rules", Rules: []policy.PolicyRule{{Action: action, Expression: expr}}}
	}
	for name, tc := range map[string]struct {
		policy policy.Policy
		// names are what the error must quote, so a user can find the part.
		names []string
	}{
		"a condition on another parameter": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"compute": rule("allow", "operation == 'list-instances' && parameters.zone == 'ch-gva-2'"),
			}},
			names: []string{"services.compute.rules[0]", `parameters.zone == "ch-gva-2"`},
		},
		"a deny rule": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"sos": rule("deny", "operation == 'delete-sos-object'"),
			}},
			names: []string{"services.sos.rules[0]", "deny rule"},
		},
		"a negation": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"compute": rule("allow", "!(operation in ['delete-instance'])"),
			}},
			names: []string{"services.compute.rules[0]", "!(operation in"},
		},
		"everything but one service": {
			policy: policy.Policy{DefaultServiceStrategy: "allow", Services: map[string]policy.ServicePolicy{
				"iam": {Type: "deny"},
			}},
			names: []string{"services.iam: type deny under default-service-strategy allow"},
		},
		"a bucket on compute": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"compute": rule("allow", "parameters.bucket == 'a'"),
			}},
			names: []string{"services.compute.rules[0]", "buckets narrow sos only"},
		},
		"buckets on some sos rules only": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"sos": {Type: "rules", Rules: []policy.PolicyRule{
					{Action: "allow", Expression: "operation == 'get-sos-object' && parameters.bucket == 'a'"},
					{Action: "allow", Expression: "operation == 'list-objects'"},
				}},
			}},
			names: []string{"services.sos: some rules name buckets and some do not"},
		},
		"an operation of another service": {
			policy: policy.Policy{DefaultServiceStrategy: "deny", Services: map[string]policy.ServicePolicy{
				"dns": rule("allow", "operation == 'list-instances'"),
			}},
			names: []string{"operation list-instances belongs to class \"compute\", not dns"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecompilePolicy(tc.policy, cat)
			var inexpressible *InexpressibleError
			if !errors.As(err, &inexpressible) {
				t.Fatalf("want an InexpressibleError, got %v", err)
			}
			for _, name := range tc.names {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("the error %q does not name %q", err, name)
				}
			}
		})
	}
}
