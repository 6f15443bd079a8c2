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
	"operations":        {Operations: []string{"list-instances", "get-instance", "list-zones"}},
	"tag":               {Tags: []string{"compute"}},
	"legacy-tag-syntax": {Tags: []string{"compute/*"}},
	"tag-and-operation": {Tags: []string{"dns"}, Operations: []string{"list-instances", "list-dns-domains"}},
	"bucket":            {Operations: []string{"get-sos-object", "put-sos-object", "list-sos-bucket"}, Resources: []string{"sos/bucket:backups-prod"}},
	"buckets-with-tag":  {Tags: []string{"sos"}, Resources: []string{"sos/bucket:b", "sos/bucket:a"}},
	"quote-in-bucket":   {Operations: []string{"get-sos-object"}, Resources: []string{`sos/bucket:it's`}},
	"unrestricted":      {Unrestricted: true},
}

func TestCompilePolicyGolden(t *testing.T) {
	cat := catalog.Default()
	for name, spec := range exampleSpecs {

		t.Run(name, func(t *testing.T) {
			got, err := CompilePolicy(spec, cat)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := policy.Compile(got, cat); err != nil {
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
	compiled, err := policy.Compile(p, cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op, service, bucket string
		want                bool
	}{
		{"get-sos-object", "sos", "b", true},
		{"get-sos-object", "sos", "c", false},
		{"put-sos-object", "sos", "b", false},
		{"list-zones", "general", "", true},
		{"get-operation", "general", "", false},
		{"list-instances", "compute", "", false},
	} {
		params := map[string]string{}
		if tc.bucket != "" {
			params["bucket"] = tc.bucket
		}
		if got := compiled.Allows(tc.service, tc.op, params); got != tc.want {
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
		"unknown tag":        {KeySpec{Tags: []string{"computer"}}, ReasonUnknownTag, "tags are the services"},
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
