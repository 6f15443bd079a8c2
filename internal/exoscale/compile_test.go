package exoscale

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exokey/exokey/internal/exoscale/catalog"
	"github.com/exokey/exokey/internal/exoscale/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// exampleSpecs are a spec of each shape the compiler writes.
var exampleSpecs = map[string]KeySpec{
	"operations":         {Operations: []string{"list-instances", "get-instance", "list-zones"}},
	"tag":                {Tags: []string{"compute"}},
	"legacy-tag-syntax":  {Tags: []string{"compute/*"}},
	"tag-and-operation":  {Tags: []string{"dns"}, Operations: []string{"list-instances", "list-dns-domains"}},
	"bucket":             {Operations: []string{"get-sos-object", "put-sos-object", "list-sos-bucket"}, Resources: []string{"sos/bucket:backups-prod"}},
	"buckets-with-tag":   {Tags: []string{"sos"}, Resources: []string{"sos/bucket:b", "sos/bucket:a"}},
	"quote-in-bucket":    {Operations: []string{"get-sos-object"}, Resources: []string{`sos/bucket:it's`}},
	"unrestricted":       {Unrestricted: true},
	"bucket-v3-names":    {Operations: []string{"get-object", "list-objects", "list-buckets"}, Resources: []string{"sos/bucket:b1"}},
	"list-buckets-first": {Operations: []string{"list-sos-buckets", "get-sos-object"}, Resources: []string{"sos/bucket:b1"}},
	"block-storage-tag":  {Tags: []string{"block-storage"}},
}

func TestCompilePolicyGolden(t *testing.T) {
	cat := catalog.Default()
	for name, spec := range exampleSpecs {

		t.Run(name, func(t *testing.T) {
			got, err := CompilePolicy(spec, cat)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := policy.Compile(got); err != nil {
				t.Fatalf("the compiled policy is not valid: %v", err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			raw := buf.Bytes()
			golden := filepath.Join("testdata", "policies", name+".json")
			if *update {
				if err := os.WriteFile(golden, raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if string(raw) != string(want) {
				t.Errorf("policy differs from %s:\n%s", golden, raw)
			}
		})
	}
}

func TestCompiledPolicyGrantsExactlyTheSpec(t *testing.T) {
	cat := catalog.Default()
	p, err := CompilePolicy(KeySpec{Operations: []string{"get-sos-object", "list-zones"}, Resources: []string{"sos/bucket:b"}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op, bucket string
		want       bool
	}{
		{"get-object", "b", true},
		{"head-object", "b", true},
		{"get-object", "c", false},
		{"put-object", "b", false},
		{"list-zones", "", true},
		{"list-instances", "", false},
		{"list-block-storage-volumes", "", false},
	} {
		params := map[string]string{}
		if tc.bucket != "" {
			params["bucket"] = tc.bucket
		}
		op, _ := cat.Lookup(tc.op)
		if got := compiled.Allows(op, params); got != tc.want {
			t.Errorf("%s on %q: %v, want %v", tc.op, tc.bucket, got, tc.want)
		}
	}
}

func TestCompilePolicyRefusals(t *testing.T) {
	cat := catalog.Default()
	for name, tc := range map[string]struct {
		spec       KeySpec
		wantReason string
		wantText   string
	}{
		"typo":               {KeySpec{Operations: []string{"get-sos-objekt"}}, ReasonUnknownOperation, `did you mean "get-sos-object"?`},
		"unknown tag":        {KeySpec{Tags: []string{"computer"}}, ReasonUnknownTag, "tags are the service classes"},
		"bad resource":       {KeySpec{Operations: []string{"get-sos-object"}, Resources: []string{"bucket:b"}}, ReasonInvalidResource, "DOMAIN/TYPE:NAME"},
		"unknown type":       {KeySpec{Operations: []string{"get-sos-object"}, Resources: []string{"sos/object:b"}}, ReasonInvalidResource, "sos/bucket and partner/product"},
		"bucket without sos": {KeySpec{Operations: []string{"list-zones"}, Resources: []string{"sos/bucket:b"}}, ReasonInvalidResource, "granted none"},
		"partner on IAMv3":   {KeySpec{Operations: []string{"list-zones"}, Resources: []string{"partner/product:p"}}, ReasonUnsupported, "cannot be expressed on IAMv3"},
		"nothing":            {KeySpec{}, ReasonUnsupported, "at least one operation or tag"},
		"unrestricted+ops":   {KeySpec{Unrestricted: true, Tags: []string{"sos"}}, ReasonUnsupported, "unrestricted"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := CompilePolicy(tc.spec, cat)
			var specErr *SpecError
			if !errors.As(err, &specErr) || specErr.Reason != tc.wantReason || !strings.Contains(specErr.Message, tc.wantText) {
				t.Fatalf("got %v, want %s containing %q", err, tc.wantReason, tc.wantText)
			}
			if !IsTerminal(err) {
				t.Error("a spec error is terminal")
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c := Credential{Key: Key{ID: "EXO1"}, Secret: "s3cr3t-value"}
	for _, s := range []string{
		c.Secret.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c.Secret), fmt.Sprintf("%q", c.Secret),
	} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("the secret printed: %s", s)
		}
	}
	raw, _ := json.Marshal(c)
	if strings.Contains(string(raw), "s3cr3t") {
		t.Errorf("the secret marshalled: %s", raw)
	}
	if c.Secret.Reveal() != "s3cr3t-value" {
		t.Error("Reveal returns the value")
	}
}

// TestLegacyNamesCompileToS3Actions: an IAMv3 role speaks S3 action names;
// a policy with a legacy S3 name would be denied every S3 call.
func TestLegacyNamesCompileToS3Actions(t *testing.T) {
	cat := catalog.Default()
	legacy, err := CompilePolicy(KeySpec{Operations: []string{"get-sos-object", "list-sos-bucket"}, Resources: []string{"sos/bucket:b1"}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	v3, err := CompilePolicy(KeySpec{Operations: []string{"get-object", "head-object", "list-objects"}, Resources: []string{"sos/bucket:b1"}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(legacy)
	for _, want := range []string{"'get-object'", "'head-object'", "'list-objects'", "parameters.bucket == 'b1'"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the policy lacks %s: %s", want, raw)
		}
	}
	if strings.Contains(string(raw), "-sos-") {
		t.Errorf("a legacy S3 name reached the role policy: %s", raw)
	}
	if !policy.Equal(legacy, v3) {
		t.Errorf("legacy and v3 names must compile to the same policy:\n%+v\n%+v", legacy, v3)
	}
}

// TestOperationsCompileIntoTheServersClasses is the catalogue's table as
// the compiler uses it: list-zones, block storage and quotas are compute.
func TestOperationsCompileIntoTheServersClasses(t *testing.T) {
	cat := catalog.Default()
	p, err := CompilePolicy(KeySpec{Operations: []string{"list-zones", "list-block-storage-volumes", "list-quotas", "list-instances"}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Services) != 1 || p.Services["compute"].Type != "rules" {
		t.Fatalf("want one compute class, got %+v", p.Services)
	}
	want := "operation in ['list-block-storage-volumes', 'list-instances', 'list-quotas', 'list-zones']"
	if got := p.Services["compute"].Rules[0].Expression; got != want {
		t.Errorf("compute rule %s, want %s", got, want)
	}
	// get-operation is not gated by role policies: it needs no grant.
	p, err = CompilePolicy(KeySpec{Operations: []string{"get-operation", "list-zones"}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Services) != 1 {
		t.Errorf("get-operation granted a class: %+v", p.Services)
	}
}

func TestLegacyIssuerRefusesV3Names(t *testing.T) {
	cat := catalog.Default()
	_, err := Resolve(KeySpec{Operations: []string{"get-object"}}, cat)
	var specErr *SpecError
	if !errors.As(err, &specErr) || specErr.Reason != ReasonWrongVocabulary || !strings.Contains(specErr.Message, "ask for get-sos-object") {
		t.Fatalf("got %v, want a refusal naming get-sos-object", err)
	}
	if _, err := Resolve(KeySpec{Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:b"}}, cat); err != nil {
		t.Errorf("legacy names are the legacy key's own: %v", err)
	}
}
