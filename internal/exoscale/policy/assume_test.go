package policy

import "testing"

func TestAssumeRolePolicy(t *testing.T) {
	for name, tc := range map[string]struct {
		policy AssumeRolePolicy
		key    string
		want   bool
	}{
		"the allowed key":       {policy: AllowKey("EXOissuer"), key: "EXOissuer", want: true},
		"another key":           {policy: AllowKey("EXOissuer"), key: "EXOtenant"},
		"a quote in the key":    {policy: AllowKey(`EXO'||true||'`), key: "EXOtenant"},
		"no rules allow no one": {policy: AssumeRolePolicy{}, key: "EXOissuer"},
		"first rule decides": {
			policy: AssumeRolePolicy{Rules: []PolicyRule{
				{Action: "deny", Expression: "api_key == 'EXObad'"},
				{Action: "allow", Expression: "api_key.startsWith('EXO')"},
			}},
			key: "EXOgood", want: true,
		},
		"denied before allowed": {
			policy: AssumeRolePolicy{Rules: []PolicyRule{
				{Action: "deny", Expression: "api_key == 'EXObad'"},
				{Action: "allow", Expression: "api_key.startsWith('EXO')"},
			}},
			key: "EXObad",
		},
	} {
		t.Run(name, func(t *testing.T) {
			compiled, err := CompileAssumeRolePolicy(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if got := compiled.Allows(tc.key); got != tc.want {
				t.Errorf("Allows(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
	if got := AllowKey("EXOissuer").Rules[0].Expression; got != "api_key == 'EXOissuer'" {
		t.Errorf("AllowKey names the key through api_key, the documented binding: got %s", got)
	}
	for _, bad := range []PolicyRule{
		{Action: "maybe", Expression: "true"},
		{Action: "allow", Expression: "api_key"},
		{Action: "allow", Expression: "caller.key == 'x'"}, // an invented binding
	} {
		if _, err := CompileAssumeRolePolicy(AssumeRolePolicy{Rules: []PolicyRule{bad}}); err == nil {
			t.Errorf("%+v compiled; want an error", bad)
		}
	}
}
