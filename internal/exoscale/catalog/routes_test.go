package catalog

import "testing"

func TestRouter(t *testing.T) {
	r := NewRouter(Default())
	for _, tc := range []struct {
		method, path string
		wantOp       string
		wantParams   map[string]string
	}{
		{"GET", "/v2/zone", "list-zones", nil},
		{"GET", "/v2/iam-role/abc", "get-iam-role", map[string]string{"id": "abc"}},
		{"PUT", "/v2/iam-role/abc:policy", "update-iam-role-policy", map[string]string{"id": "abc"}},
		{"PUT", "/v2/iam-role/abc", "update-iam-role", map[string]string{"id": "abc"}},
		{"POST", "/v2/iam-role/abc/assume", "assume-iam-role", map[string]string{"id": "abc"}},
		{"DELETE", "/v2/access-key/EXO1", "revoke-access-key", map[string]string{"key": "EXO1"}},
		{"GET", "/v2/nothing-here", "", nil},
	} {
		got, params, ok := r.Match(tc.method, tc.path)
		if got.Name != tc.wantOp || ok != (tc.wantOp != "") {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, got.Name, tc.wantOp)
		}
		for k, v := range tc.wantParams {
			if params[k] != v {
				t.Errorf("%s %s: param %s=%q, want %q", tc.method, tc.path, k, params[k], v)
			}
		}
	}
}

// FuzzPolicyEvaluation feeds arbitrary expressions and call inputs to the
// policy compiler and evaluator: they must refuse or answer, never panic or
// run away (the cost limit), and a rule that compiles to "false" never allows.
