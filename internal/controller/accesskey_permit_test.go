package controller

import (
	"slices"
	"strings"
	"testing"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/exoscale/catalog"
)

func TestCeilingKeepsIAMOutOfWildcards(t *testing.T) {
	cat := catalog.Default()
	for _, tc := range []struct {
		name    string
		spec    iamv1beta1.AccessKeySpec
		allowed iamv1beta1.Allowed
		refused string // empty: allowed
	}{
		{"create-* does not reach create-api-key", iamv1beta1.AccessKeySpec{Operations: []string{"create-api-key"}},
			iamv1beta1.Allowed{Operations: []string{"create-*"}}, "named explicitly"},
		{"* does not reach assume-iam-role", iamv1beta1.AccessKeySpec{Operations: []string{"assume-iam-role"}},
			iamv1beta1.Allowed{Operations: []string{"*"}}, "named explicitly"},
		{"tag * does not reach the iam service", iamv1beta1.AccessKeySpec{Operations: []string{"create-iam-role"}},
			iamv1beta1.Allowed{Tags: []string{"*"}}, "named explicitly"},
		{"tag * does not grant tag iam", iamv1beta1.AccessKeySpec{Tags: []string{"iam"}},
			iamv1beta1.Allowed{Tags: []string{"*"}}, "tag iam"},
		{"tag i* does not grant tag iam", iamv1beta1.AccessKeySpec{Tags: []string{"iam/*"}},
			iamv1beta1.Allowed{Tags: []string{"i*"}}, "tag iam"},
		{"an IAM operation named explicitly", iamv1beta1.AccessKeySpec{Operations: []string{"create-api-key"}},
			iamv1beta1.Allowed{Operations: []string{"create-api-key"}}, ""},
		{"the iam service named explicitly", iamv1beta1.AccessKeySpec{Operations: []string{"list-api-keys"}, Tags: []string{"iam"}},
			iamv1beta1.Allowed{Tags: []string{"iam"}}, ""},
		{"create-* still reaches compute", iamv1beta1.AccessKeySpec{Operations: []string{"create-instance"}},
			iamv1beta1.Allowed{Operations: []string{"create-*"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCeiling(tc.spec, tc.allowed, cat)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("got %v, want a refusal with %q", err, tc.refused)
			}
		})
	}
}

func TestCeilingStatusShowsWhatAllowedExpandsTo(t *testing.T) {
	cat := catalog.Default()
	wild := Ceiling(iamv1beta1.Allowed{Operations: []string{"*"}, Tags: []string{"*"}}, cat)
	if len(wild.IAMOperations) != 0 || slices.Contains(wild.Services, "iam") {
		t.Fatalf("wildcards expanded to IAM: %+v", wild)
	}
	iamOps := 0
	for _, op := range cat.Operations() {
		if op.Class == iamService {
			iamOps++
		}
	}
	if *wild.Operations != int32(len(cat.Operations())-iamOps) {
		t.Fatalf("wildcards expand to %d operations, want every one outside iam", *wild.Operations)
	}
	bucketed := Ceiling(iamv1beta1.Allowed{Operations: []string{"get-sos-object"}, Resources: []string{"sos/bucket:team-a-*"}}, cat)
	if *bucketed.Operations != 3 { // get-sos-object, and get-object and head-object, which it is in IAM v3

		t.Fatalf("an operation allowed on some buckets counts: %+v", bucketed)
	}
	named := Ceiling(iamv1beta1.Allowed{Operations: []string{"get-sos-*", "create-api-key"}}, cat)
	if !slices.Equal(named.IAMOperations, []string{"create-api-key"}) || len(named.Services) != 0 {
		t.Fatalf("named: %+v", named)
	}
}

func TestCheckEndpoint(t *testing.T) {
	for endpoint, ok := range map[string]bool{
		"":                                  true,
		"https://api-ch-gva-2.exoscale.com": true,
		"http://127.0.0.1:8080/v2":          true,
		"http://[::1]:8080/v2":              true,
		"http://localhost:8080/v2":          true,
		"http://10.0.0.7:8080/v2":           false,
		"http://exoscale.example/v2":        false,
		"http://127.0.0.1.example.com/v2":   false,
	} {
		err := checkEndpoint(iamv1beta1.IssuerSpec{Endpoint: endpoint})
		if (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", endpoint, err, ok)
		}
	}
	if err := checkEndpoint(iamv1beta1.IssuerSpec{Endpoint: "http://10.0.0.7/v2", InsecureEndpoint: iamv1beta1.PermissionAllow}); err != nil {
		t.Errorf("an issuer that accepts the risk: %v", err)
	}
}

// FuzzCeiling checks the ceiling against its promise: an operation passes
// only when a pattern or a tag allows it, and an IAM operation only when it
// or the iam service is named exactly.
func FuzzCeiling(f *testing.F) {
	cat := catalog.Default()
	ops := cat.Operations()
	for _, seed := range []string{"*", "create-*", "get-sos-*", "create-api-key", "iam", "i*", "*-*"} {
		f.Add(seed, seed, uint16(3))
	}
	f.Fuzz(func(t *testing.T, opPattern, tagPattern string, index uint16) {
		op := ops[int(index)%len(ops)]
		allowed := iamv1beta1.Allowed{Operations: []string{opPattern}, Tags: []string{tagPattern}}
		err := CheckCeiling(iamv1beta1.AccessKeySpec{Operations: []string{op.Name}}, allowed, cat)
		if err != nil {
			return
		}
		for _, name := range cat.V3Actions(op.Name) {
			action, _ := cat.Lookup(name)
			namedAs := []string{name, op.Name, cat.LegacyName(name)}
			if action.Class == iamService {
				if !slices.Contains(namedAs, opPattern) && tagPattern != iamService {
					t.Fatalf("IAM operation %s passed a ceiling of %q / tag %q", op.Name, opPattern, tagPattern)
				}
				continue
			}
			if !slices.ContainsFunc(namedAs, func(n string) bool { return n != "" && catalog.Glob(opPattern, n) }) &&
				!catalog.Glob(tagPattern, action.Class) && !catalog.Glob(tagPattern, action.Tag) {
				t.Fatalf("operation %s (%s) passed a ceiling of %q / tag %q", op.Name, name, opPattern, tagPattern)
			}
		}
	})
}

// TestCeilingMeansTheSameRightsInEitherVocabulary: a ceiling written with
// legacy names allows their IAM v3 actions and the other way round, and a
// legacy name is allowed only when every action it covers is.
func TestCeilingMeansTheSameRightsInEitherVocabulary(t *testing.T) {
	cat := catalog.Default()
	for _, tc := range []struct {
		name    string
		spec    []string
		allowed []string
		refused string
	}{
		{"legacy ceiling, v3 spec", []string{"get-object", "list-objects"}, []string{"get-sos-*", "list-sos-bucket"}, ""},
		{"v3 ceiling, legacy spec", []string{"get-sos-object", "list-sos-bucket"}, []string{"get-object", "head-object", "list-objects"}, ""},
		{"a legacy name wider than the ceiling", []string{"get-sos-object"}, []string{"get-object"}, "operation get-sos-object (as IAM v3 actions: head-object beyond)"},
		{"another action", []string{"put-object"}, []string{"get-sos-object"}, "operation put-object"},
		{"a tag ceiling in the legacy vocabulary", []string{"list-block-storage-volumes"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			allowed := iamv1beta1.Allowed{Operations: tc.allowed}
			if tc.allowed == nil {
				allowed.Tags = []string{"block-storage"}
			}
			err := CheckCeiling(iamv1beta1.AccessKeySpec{Operations: tc.spec}, allowed, cat)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("got %v, want a refusal with %q", err, tc.refused)
			}
		})
	}
}

func TestAsyncUnfollowable(t *testing.T) {
	cat := catalog.Default()
	for _, tc := range []struct {
		name string
		spec iamv1beta1.AccessKeySpec
		want []string
	}{
		{"a create without get-operation", iamv1beta1.AccessKeySpec{Operations: []string{"create-instance", "list-instances"}}, []string{"create-instance"}},
		{"with get-operation", iamv1beta1.AccessKeySpec{Operations: []string{"create-instance", "get-operation"}}, nil},
		{"reads only", iamv1beta1.AccessKeySpec{Operations: []string{"list-instances", "get-instance"}}, nil},
		{"S3 answers directly", iamv1beta1.AccessKeySpec{Operations: []string{"put-sos-object"}}, nil},
		{"a key answers directly", iamv1beta1.AccessKeySpec{Operations: []string{"create-access-key"}}, nil},
		{"through a tag", iamv1beta1.AccessKeySpec{Tags: []string{"dns"}}, []string{"create-dns-domain", "create-dns-domain-record", "delete-dns-domain", "delete-dns-domain-record", "update-dns-domain-record"}},
		{"the tag general holds get-operation", iamv1beta1.AccessKeySpec{Tags: []string{"dns", "general"}}, nil},
	} {
		if got := asyncUnfollowable(tc.spec, cat); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
