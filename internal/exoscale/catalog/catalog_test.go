package catalog

import (
	"slices"
	"testing"
)

func TestDefaultCatalogue(t *testing.T) {
	c := Default()
	if n := len(c.Operations()); n < 400 {
		t.Fatalf("%d operations, want the whole catalogue", n)
	}
	op, ok := c.Lookup("get-sos-object")
	if !ok || op.Tag != "sos" || op.Class != "sos" || op.Protocol != "s3" || op.Vocabulary != Legacy {
		t.Errorf("get-sos-object: %+v", op)
	}
	op, ok = c.Lookup("create-api-key")
	if !ok || op.Method != "POST" || op.Path != "/v2/api-key" {
		t.Errorf("create-api-key: %+v", op)
	}
	if _, ok := c.Lookup("get-sos-objects"); ok {
		t.Error("an unknown name was found")
	}
	if !c.HasTag("compute") || c.HasTag("compute/*") {
		t.Error("tags are without the /* suffix")
	}
	if ops := c.TagOperations("sos"); len(ops) != 15 || !slices.IsSorted(ops) || slices.Contains(ops, "get-object") {
		t.Errorf("the legacy tag sos holds the legacy names: %v", ops)
	}
	if ops := c.ClassOperations("sos"); !slices.Contains(ops, "get-object") || slices.Contains(ops, "get-sos-object") || !slices.IsSorted(ops) {
		t.Errorf("the class sos holds the S3 actions: %v", ops)
	}
}

func TestGlobAndNormalize(t *testing.T) {
	c := Default()
	got := c.MatchOperations("get-sos-*")
	if !slices.Equal(got, []string{"get-sos-bucket-acl", "get-sos-bucket-cors", "get-sos-bucket-ownership-controls", "get-sos-object", "get-sos-presigned-url"}) {
		t.Errorf("get-sos-*: %v", got)
	}
	if len(c.MatchOperations("[")) != 0 {
		t.Error("a malformed pattern must match nothing")
	}
	if NormalizeTag("compute/*") != "compute" || NormalizeTag("sos") != "sos" {
		t.Error("compute/* is the tag compute")
	}
	if !Glob("sos/bucket:team-a-*", "sos/bucket:team-a-logs") || Glob("sos/bucket:team-a-*", "sos/bucket:team-b") {
		t.Error("resource globs")
	}
}

func TestSuggest(t *testing.T) {
	c := Default()
	for typo, want := range map[string]string{
		"get-sos-objct":   "get-sos-object",
		"list-sos-bucket": "list-sos-bucket",
		"put-sos-objects": "put-sos-object",
		"list-instance":   "list-instances",
	} {
		if got := c.Suggest(typo); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", typo, got, want)
		}
	}
	if got := c.Suggest("completely-unrelated-words-here-xyz"); got != "" {
		t.Errorf("nothing close should suggest nothing, got %q", got)
	}
}

func TestParseRefusesBadCatalogues(t *testing.T) {
	for _, raw := range []string{`{`, `{"operations":[{"operation":"a"}]}`, `{"operations":[{"operation":"a","tag":"s"},{"operation":"a","tag":"s"}]}`,
		`{"operations":[{"operation":"a","tag":"s","vocabulary":"legacy","s3-actions":["nope"]}]}`,
		`{"operations":[{"operation":"a","tag":"s","vocabulary":"legacy"}]}`} {
		if _, err := Parse([]byte(raw)); err == nil {
			t.Errorf("accepted %s", raw)
		}
	}
}

// TestClassesAsTheServerSeesThem: the IAM v3 class of an operation is the
// server's, not the documentation tag's parent.
func TestClassesAsTheServerSeesThem(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		operation, class, tag string
		source                Source
	}{
		{"list-zones", "compute", "general", Confirmed},
		{"list-block-storage-volumes", "compute", "block-storage", Confirmed},
		{"create-block-storage-volume", "compute", "block-storage", Confirmed},
		{"list-quotas", "compute", "quotas", Confirmed},
		{"get-quota", "compute", "quotas", Confirmed},
		{"list-instances", "compute", "compute", Inferred},
		{"get-operation", "", "general", Inferred},
		{"get-object", "sos", "sos", Confirmed},
		{"head-object", "sos", "sos", ThirdParty},
		{"list-sos-buckets-usage", "sos", "sos", Confirmed},
	} {
		op, ok := c.Lookup(tc.operation)
		if !ok || op.Class != tc.class || op.Tag != tc.tag || op.ClassSource != tc.source {
			t.Errorf("%s: class %q (%s), tag %q; want class %q (%s), tag %q", tc.operation, op.Class, op.ClassSource, op.Tag, tc.class, tc.source, tc.tag)
		}
	}
	if op, _ := c.Lookup("get-operation"); op.Gated() {
		t.Error("get-operation is not gated by role policies")
	}
	for _, op := range c.Operations() {
		switch op.ClassSource {
		case Confirmed, ThirdParty, Inferred, Unknown:
		default:
			t.Errorf("%s: class-source %q is not one of confirmed, third-party, inferred, unknown", op.Name, op.ClassSource)
		}
	}
}

// TestLegacyNamesTranslate holds the documented table of legacy S3 names
// and the IAM v3 actions they cover.
func TestLegacyNamesTranslate(t *testing.T) {
	c := Default()
	for legacy, actions := range map[string][]string{
		"get-sos-object":    {"get-object", "head-object"},
		"list-sos-bucket":   {"list-objects"},
		"list-sos-buckets":  {"list-buckets"},
		"put-sos-object":    {"put-object"},
		"delete-sos-object": {"delete-object"},
		"list-instances":    {"list-instances"}, // a /v2 operation is named alike
	} {
		if got := c.V3Actions(legacy); !slices.Equal(got, actions) {
			t.Errorf("V3Actions(%s) = %v, want %v", legacy, got, actions)
		}
	}
	for action, legacy := range map[string]string{"get-object": "get-sos-object", "head-object": "get-sos-object",
		"list-objects": "list-sos-bucket", "head-bucket": ""} {
		if got := c.LegacyName(action); got != legacy {
			t.Errorf("LegacyName(%s) = %q, want %q", action, got, legacy)
		}
	}
	if op, _ := c.Lookup("list-buckets"); !op.Bucketless {
		t.Error("list-buckets names no bucket")
	}
	for _, op := range c.OperationsOf(true) {
		if op.Vocabulary == Legacy {
			t.Errorf("IAM v3 speaks no legacy S3 name: %s", op.Name)
		}
	}
	for _, op := range c.OperationsOf(false) {
		if op.Vocabulary == V3 {
			t.Errorf("legacy keys speak no S3 action name: %s", op.Name)
		}
	}
}
