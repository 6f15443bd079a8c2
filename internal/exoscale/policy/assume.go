package policy

import (
	"fmt"
)

// AssumeRolePolicy says which keys may assume a role (assume-iam-role). Its
// rules are tried in order and the first whose expression is true decides;
// when none matches, the key may not assume the role. Exoscale documents
// the policy's shape ({"rules": [...]}) but not the bindings its
// expressions see: exokey and the emulator give them those of a role
// policy, the assuming key in api_key, the one documented binding that
// names a caller (inferred; docs/reference/exoscale-facts.md).
type AssumeRolePolicy struct {
	Rules []PolicyRule `json:"rules,omitempty"`
}

// AllowKey is the assume-role policy that lets one key, and no other,
// assume the role.
func AllowKey(keyID string) AssumeRolePolicy {
	return AssumeRolePolicy{Rules: []PolicyRule{{Action: "allow", Expression: BindingAPIKey + " == " + quote(keyID)}}}
}

// CompiledAssumeRolePolicy is a validated assume-role policy.
type CompiledAssumeRolePolicy struct {
	rules []compiledRule
}

// CompileAssumeRolePolicy validates p and compiles its rules.
func CompileAssumeRolePolicy(p AssumeRolePolicy) (*CompiledAssumeRolePolicy, error) {
	compiled := &CompiledAssumeRolePolicy{}
	for i, rule := range p.Rules {
		compiledRule, err := compileRule(rule, map[string]bool{})
		if err != nil {
			return nil, fmt.Errorf("assume-role-policy.rules[%d]: %w", i, err)
		}
		compiled.rules = append(compiled.rules, compiledRule)
	}
	return compiled, nil
}

// Allows says whether the key keyID may assume the role.
func (p *CompiledAssumeRolePolicy) Allows(keyID string) bool {
	vars, err := Request{Class: "iam", Operation: "assume-iam-role", APIKey: keyID}.activation()
	if err != nil {
		return false
	}
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

// quote writes s as a CEL string literal.
func quote(s string) string { return celString(s) }
