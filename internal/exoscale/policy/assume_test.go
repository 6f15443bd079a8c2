package policy

import "testing"

func TestAssumeRolePolicy(t *testing.T) {
	for name, tc := range map[string]struct {
		policy      AssumeRolePolicy
		key, roleID string
		want        bool
	}{
		"the allowed key":       {policy: AllowKey("EXOissuer"), key: "EXOissuer", want: true},
		"another key":           {policy: AllowKey("EXOissuer"), key: "EXOtenant"},
		"a quote in the key":    {policy: AllowKey(`EXO"||true||"`), key: "EXOtenant"},
		"no rules allow no one": {policy: AssumeRolePolicy{}, key: "EXOissuer"},
		"by role, first rule decides": {
			policy: AssumeRolePolicy{Rules: []PolicyRule{
				{Action: "deny", Expression: "caller.key == 'EXObad'"},
				{Action: "allow", Expression: "caller.role_id == 'r1'"},
			}},
			key: "EXOgood", roleID: "r1", want: true,
		},
		"denied before allowed": {
			policy: AssumeRolePolicy{Rules: []PolicyRule{
				{Action: "deny", Expression: "caller.key == 'EXObad'"},
				{Action: "allow", Expression: "caller.role_id == 'r1'"},
			}},
			key: "EXObad", roleID: "r1",
		},
	} {
		t.Run(name, func(t *testing.T) {
			compiled, err := CompileAssumeRolePolicy(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if got := compiled.Allows(tc.key, tc.roleID); got != tc.want {
				t.Errorf("Allows(%q, %q) = %v, want %v", tc.key, tc.roleID, got, tc.want)
			}
		})
	}
	for _, bad := range []PolicyRule{
		{Action: "maybe", Expression: "true"},
		{Action: "allow", Expression: "caller.key"},
		{Action: "allow", Expression: "operation == 'x'"},
	} {
		if _, err := CompileAssumeRolePolicy(AssumeRolePolicy{Rules: []PolicyRule{bad}}); err == nil {
			t.Errorf("%+v compiled; want an error", bad)
		}
	}
}
