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
	if !ok || op.Service != "sos" || op.Protocol != "s3" {
		t.Errorf("get-sos-object: %+v", op)
	}
	op, ok = c.Lookup("create-api-key")
	if !ok || op.Method != "POST" || op.Path != "/v2/api-key" {
		t.Errorf("create-api-key: %+v", op)
	}
	if _, ok := c.Lookup("get-sos-objects"); ok {
		t.Error("an unknown name was found")
	}
	if !c.HasService("compute") || c.HasService("compute/*") {
		t.Error("services are the tags, without the /* suffix")
	}
	if ops := c.ServiceOperations("sos"); len(ops) != 11 || !slices.IsSorted(ops) {
		t.Errorf("sos operations: %v", ops)
	}
}

func TestGlobAndNormalize(t *testing.T) {
	c := Default()
	got := c.MatchOperations("get-sos-*")
	if !slices.Equal(got, []string{"get-sos-object", "get-sos-presigned-url"}) {
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
	for _, raw := range []string{`{`, `{"operations":[{"operation":"a"}]}`, `{"operations":[{"operation":"a","service":"s"},{"operation":"a","service":"s"}]}`} {
		if _, err := Parse([]byte(raw)); err == nil {
			t.Errorf("accepted %s", raw)
		}
	}
}
