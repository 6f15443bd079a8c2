// Package policy is the IAM v3 role policy: its wire form, its validation
// and its evaluation with CEL, as Exoscale documents it. The emulator
// enforces policies with it; the backends read an issuer's own policy with it.
package policy

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"

	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// Policy is an IAM v3 role policy on the wire.
// DefaultServiceStrategy is allow or deny; a service's Type is allow, deny
// or rules.
type Policy struct {
	DefaultServiceStrategy string                   `json:"default-service-strategy"`
	Services               map[string]ServicePolicy `json:"services"`
}

// ServicePolicy is one service's part of a Policy.
type ServicePolicy struct {
	Type  string       `json:"type"`
	Rules []PolicyRule `json:"rules,omitempty"`
}

// PolicyRule is a CEL expression deciding allow or deny.
type PolicyRule struct {
	Action     string   `json:"action"`
	Expression string   `json:"expression"`
	Resources  []string `json:"resources,omitempty"`
}

// celCostLimit bounds the work one rule may do, so a hostile policy cannot
// stall the emulator.
const celCostLimit = 100_000

var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("operation", cel.StringType),
		cel.Variable("parameters", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		panic(err)
	}
	return env
}()

// Compiled is a validated policy, ready to evaluate.
type Compiled struct {
	source   Policy
	services map[string]compiledService
	literals []string
}

type compiledService struct {
	kind  string // allow | deny | rules
	rules []compiledRule
}

type compiledRule struct {
	allow   bool
	program cel.Program
}

// Compile validates p against the catalogue's services and compiles its rules.
func Compile(p Policy, cat *catalog.Catalog) (*Compiled, error) {
	if p.DefaultServiceStrategy != "allow" && p.DefaultServiceStrategy != "deny" {
		return nil, fmt.Errorf("default-service-strategy must be allow or deny, not %q", p.DefaultServiceStrategy)
	}
	compiled := &Compiled{source: p, services: map[string]compiledService{}}
	literals := map[string]bool{}
	for name, service := range p.Services {
		if !cat.HasService(name) {
			return nil, fmt.Errorf("services: unknown service %q", name)
		}
		cs := compiledService{kind: service.Type}
		switch service.Type {
		case "allow", "deny":
			if len(service.Rules) > 0 {
				return nil, fmt.Errorf("services.%s: rules are only read when type is rules", name)
			}
		case "rules":
			if len(service.Rules) == 0 {
				return nil, fmt.Errorf("services.%s: type rules needs at least one rule", name)
			}
			for i, rule := range service.Rules {
				if rule.Action != "allow" && rule.Action != "deny" {
					return nil, fmt.Errorf("services.%s.rules[%d]: action must be allow or deny", name, i)
				}
				checked, issues := celEnv.Compile(rule.Expression)
				if issues != nil && issues.Err() != nil {
					return nil, fmt.Errorf("services.%s.rules[%d]: expression: %v", name, i, issues.Err())
				}
				if checked.OutputType() != cel.BoolType {
					return nil, fmt.Errorf("services.%s.rules[%d]: expression must be a boolean, not %s", name, i, checked.OutputType())
				}
				program, err := celEnv.Program(checked, cel.CostLimit(celCostLimit))
				if err != nil {
					return nil, fmt.Errorf("services.%s.rules[%d]: %v", name, i, err)
				}
				collectStringLiterals(checked.NativeRep().Expr(), literals)
				cs.rules = append(cs.rules, compiledRule{allow: rule.Action == "allow", program: program})
			}
		default:
			return nil, fmt.Errorf("services.%s: type must be allow, deny or rules, not %q", name, service.Type)
		}
		compiled.services[name] = cs
	}
	for literal := range literals {
		compiled.literals = append(compiled.literals, literal)
	}
	sort.Strings(compiled.literals)
	return compiled, nil
}

func collectStringLiterals(e ast.Expr, into map[string]bool) {
	visitor := ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() == ast.LiteralKind {
			if s, ok := e.AsLiteral().Value().(string); ok {
				into[s] = true
			}
		}
	})
	ast.PostOrderVisit(e, visitor)
}

// Allows evaluates the policy for one call. For type rules the first rule
// whose expression is true decides; a rule that errors (for instance on a
// parameter the call does not have) does not match; no match denies.
func (p *Compiled) Allows(service, operation string, parameters map[string]string) bool {
	return p.Decide(service, operation, parameters).Allowed
}

// Decision is the verdict of a policy on one call and what decided it.
type Decision struct {
	Allowed bool
	// Reason says which part of the policy decided, in words.
	Reason string
	// Rule is the index of the deciding rule of the service, or -1 when
	// the service's type or the default strategy decided.
	Rule int
}

// Decide evaluates the policy for one call, as Allows, and says why.
func (p *Compiled) Decide(service, operation string, parameters map[string]string) Decision {
	cs, listed := p.services[service]
	if !listed {
		return Decision{Allowed: p.source.DefaultServiceStrategy == "allow", Rule: -1, Reason: fmt.Sprintf(
			"service %s is not in the policy: default-service-strategy is %s", service, p.source.DefaultServiceStrategy)}
	}
	switch cs.kind {
	case "allow", "deny":
		return Decision{Allowed: cs.kind == "allow", Rule: -1, Reason: fmt.Sprintf("service %s has type %s", service, cs.kind)}
	}
	vars := map[string]any{"operation": operation, "parameters": stringMap(parameters)}
	for i, rule := range cs.rules {
		out, _, err := rule.program.Eval(vars)
		if err != nil {
			continue
		}
		if matched, ok := out.Value().(bool); ok && matched {
			action := "deny"
			if rule.allow {
				action = "allow"
			}
			return Decision{Allowed: rule.allow, Rule: i, Reason: fmt.Sprintf(
				"services.%s.rules[%d] (%s) matches: %s", service, i, action, p.source.Services[service].Rules[i].Expression)}
		}
	}
	return Decision{Rule: -1, Reason: fmt.Sprintf("no rule of service %s matches: denied", service)}
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Literals are the string constants of the rules: the bucket names and
// other values worth probing when comparing two policies.
func (p *Compiled) Literals() []string { return p.literals }

// Source is the policy as it was given.
func (p *Compiled) Source() Policy { return p.source }

// Describe is a one-line summary of a policy for logs.
func (p Policy) Describe() string {
	names := make([]string, 0, len(p.Services))
	for name, s := range p.Services {
		names = append(names, name+"="+s.Type+"/"+strconv.Itoa(len(s.Rules)))
	}
	sort.Strings(names)
	return p.DefaultServiceStrategy + "[" + strings.Join(names, ",") + "]"
}

// Holds lists the catalogue operations the policy allows for some call:
// without parameters, or naming one of the policy's literals as the bucket.
func (p *Compiled) Holds(cat *catalog.Catalog) []string {
	probes := []map[string]string{{}}
	for _, literal := range p.literals {
		probes = append(probes, map[string]string{"bucket": literal})
	}
	var names []string
	for _, op := range cat.Operations() {
		for _, params := range probes {
			if p.Allows(op.Service, op.Name, params) {
				names = append(names, op.Name)
				break
			}
		}
	}
	return names
}

// Equal reports whether two policies are the same as Exoscale reads them:
// an empty default-service-strategy is deny, and no services is none.
// Rules are compared in order, since the first match decides.
func Equal(a, b Policy) bool {
	return reflect.DeepEqual(a.normalized(), b.normalized())
}

func (p Policy) normalized() Policy {
	if p.DefaultServiceStrategy == "" {
		p.DefaultServiceStrategy = "deny"
	}
	services := make(map[string]ServicePolicy, len(p.Services))
	for name, s := range p.Services {
		if len(s.Rules) == 0 {
			s.Rules = nil
		}
		rules := make([]PolicyRule, len(s.Rules))
		for i, rule := range s.Rules {
			if len(rule.Resources) == 0 {
				rule.Resources = nil
			}
			rules[i] = rule
		}
		if s.Rules != nil {
			s.Rules = rules
		}
		services[name] = s
	}
	p.Services = services
	return p
}
