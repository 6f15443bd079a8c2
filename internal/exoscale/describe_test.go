package exoscale_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	v3 "github.com/exoscale/egoscale/v3"
	"github.com/exoscale/egoscale/v3/credentials"

	"github.com/exokey/exokey/internal/exoscale"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// Describe reads back what Create minted, on both APIs, over HTTP.
func TestDescribeReadsBackWhatWasMinted(t *testing.T) {
	cat := catalog.Default()
	specs := map[string]exoscale.KeySpec{
		"operations":     {Operations: []string{"list-instances", "get-instance"}},
		"tag and op":     {Tags: []string{"dns"}, Operations: []string{"list-zones"}},
		"bucket":         {Operations: []string{"get-sos-object", "list-sos-bucket"}, Resources: []string{"sos/bucket:b", "sos/bucket:a"}},
		"tag and bucket": {Tags: []string{"sos"}, Resources: []string{"sos/bucket:backups"}},
	}
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			e := newEnv(t)
			keys := e.rootKeys(t, api)
			for name, spec := range specs {
				spec.Name = "describe-" + strings.ReplaceAll(name, " ", "-")
				created, err := keys.Create(e.ctx, spec)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := keys.Describe(e.ctx, created.ID)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				resolve := exoscale.ResolveV3
				if api == exoscale.APIAccessKeyV2 {
					resolve = exoscale.Resolve
				}
				want, _ := resolve(spec, cat)
				back, err := resolve(got, cat)
				if err != nil || !reflect.DeepEqual(want, back) {
					t.Errorf("%s: read back %+v (%v), want the restrictions %+v", name, got, err, want)
				}
			}
			if _, err := keys.Describe(e.ctx, "EXO000000000000000000000000"); !errors.Is(err, exoscale.ErrNotFound) {
				t.Errorf("an unknown key: got %v, want ErrNotFound", err)
			}
		})
	}
}

// A role made by hand with a rule exokey does not compile to is refused,
// naming the rule, never read wider or narrower.
func TestDescribeRefusesAnInexpressibleRole(t *testing.T) {
	e := newEnv(t)
	rootKey, rootSecret := e.server.Root()
	client, err := v3.NewClient(credentials.NewStaticCredentials(rootKey, rootSecret), v3.ClientOptWithEndpoint(v3.Endpoint(e.endpoint)))
	if err != nil {
		t.Fatal(err)
	}
	op, err := client.CreateIAMRole(e.ctx, v3.CreateIAMRoleRequest{Name: "hand-made", Policy: &v3.IAMPolicy{
		DefaultServiceStrategy: "deny",
		Services: map[string]v3.IAMServicePolicy{"compute": {Type: "rules", Rules: []v3.IAMServicePolicyRule{
			{Action: "allow", Expression: "operation in ['list-instances', 'get-instance'] && parameters.zone == 'ch-gva-2'"},
		}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	op, err = client.Wait(e.ctx, op, v3.OperationStateSuccess)
	if err != nil {
		t.Fatal(err)
	}
	key, err := client.CreateAPIKey(e.ctx, v3.CreateAPIKeyRequest{Name: "hand-made", RoleID: op.Reference.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.rootKeys(t, exoscale.APIIAMv3).Describe(e.ctx, key.Key)
	var inexpressible *exoscale.InexpressibleError
	if !errors.As(err, &inexpressible) {
		t.Fatalf("got %v, want an InexpressibleError", err)
	}
	for _, part := range []string{"role hand-made", "services.compute.rules[0]", "parameters.zone"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("the error %q does not name %q", err, part)
		}
	}
}

// An IAMv3 issuer reads a legacy key of its organisation too: the way
// teams move hand-made keys to exokey.
func TestDescribeReadsALegacyKeyThroughAnIAMv3Issuer(t *testing.T) {
	e := newEnv(t)
	spec := exoscale.KeySpec{Name: "legacy", Operations: []string{"list-instances"}}
	created, err := e.rootKeys(t, exoscale.APIAccessKeyV2).Create(e.ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.rootKeys(t, exoscale.APIIAMv3).Describe(e.ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Operations, spec.Operations) {
		t.Errorf("got %+v, want the operations %v", got, spec.Operations)
	}
}
