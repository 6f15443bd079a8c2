package policy

import (
	"fmt"

	"github.com/google/cel-go/cel"
)

// AssumeRolePolicy says which keys may assume a role (assume-iam-role). Its
// rules are tried in order and the first whose expression is true decides;
// when none matches, the key may not assume the role. The expressions read
// `caller`, a map of the assuming key's `key` (its ID) and `role_id` (its
// role, empty for a key without one). Exoscale does not document the
// variables of these expressions: these are the emulator's and exokey's.
type AssumeRolePolicy struct {
	Rules []PolicyRule `json:"rules,omitempty"`
}

// AllowKey is the assume-role policy that lets one key, and no other,
// assume the role.
func AllowKey(keyID string) AssumeRolePolicy {
	return AssumeRolePolicy{Rules: []PolicyRule{{Action: "allow", Expression: "caller.key == " + quote(keyID)}}}
}

var assumeEnv = func() *cel.Env {
	env, err := cel.NewEnv(cel.Variable("caller", cel.MapType(cel.StringType, cel.StringType)))
	if err != nil {
		panic(err)
	}
	return env
}()

// CompiledAssumeRolePolicy is a validated assume-role policy.
type CompiledAssumeRolePolicy struct {
	rules []compiledRule
}

// CompileAssumeRolePolicy validates p and compiles its rules.
func CompileAssumeRolePolicy(p AssumeRolePolicy) (*CompiledAssumeRolePolicy, error) {
	compiled := &CompiledAssumeRolePolicy{}
	for i, rule := range p.Rules {
		if rule.Action != "allow" && rule.Action != "deny" {
			return nil, fmt.Errorf("assume-role-policy.rules[%d]: action must be allow or deny", i)
		}
		checked, issues := assumeEnv.Compile(rule.Expression)
		if issues != nil && issues.Err() != nil {
			return nil, fmt.Errorf("assume-role-policy.rules[%d]: expression: %v", i, issues.Err())
		}
		if checked.OutputType() != cel.BoolType {
			return nil, fmt.Errorf("assume-role-policy.rules[%d]: expression must be a boolean, not %s", i, checked.OutputType())
		}
		program, err := assumeEnv.Program(checked, cel.CostLimit(celCostLimit))
		if err != nil {
			return nil, fmt.Errorf("assume-role-policy.rules[%d]: %v", i, err)
		}
		compiled.rules = append(compiled.rules, compiledRule{allow: rule.Action == "allow", program: program})
	}
	return compiled, nil
}

// Allows says whether the key keyID, bound to role roleID (empty for none),
// may assume the role.
func (p *CompiledAssumeRolePolicy) Allows(keyID, roleID string) bool {
	vars := map[string]any{"caller": map[string]string{"key": keyID, "role_id": roleID}}
	for _, rule := range p.rules {
		out, _, err := rule.program.Eval(vars)
		if err != nil {
			continue
		}
		if matched, ok := out.Value().(bool); ok && matched {
			return rule.allow
		}
	}
	return false
}

func quote(s string) string {
	return fmt.Sprintf("%q", s)
}
