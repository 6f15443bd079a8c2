// Package policy is the IAM v3 role policy: its wire form, its validation
// and its evaluation with CEL, as Exoscale documents it (docs/reference/
// exoscale-facts.md): every documented binding, rules in order with the
// first true one deciding, an expression that fails skipped, an empty
// policy allowing everything, and the organisation policy as a second gate.
// The emulator enforces policies with it; the backends and kubectl exokey
// read roles exokey did not write with it.
package policy

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/exokey/exokey/internal/exoscale/catalog"
)

// Policy is an IAM v3 role policy on the wire.
// DefaultServiceStrategy is allow or deny; a service's Type is allow, deny
// or rules.
type Policy struct {
	DefaultServiceStrategy string                   `json:"default-service-strategy,omitempty"`
	Services               map[string]ServicePolicy `json:"services,omitempty"`
}

// ServicePolicy is one service class's part of a Policy.
type ServicePolicy struct {
	Type  string       `json:"type"`
	Rules []PolicyRule `json:"rules,omitempty"`
}

// PolicyRule is a CEL expression deciding allow or deny. Resources is
// deprecated at Exoscale and has no effect there, nor here.
type PolicyRule struct {
	Action     string   `json:"action"`
	Expression string   `json:"expression"`
	Resources  []string `json:"resources,omitempty"`
}

// Empty reports whether the policy says nothing: no strategy and no
// services. Exoscale reads such a policy as allowing everything (the Owner
// role's policy is empty).
func (p Policy) Empty() bool { return p.DefaultServiceStrategy == "" && len(p.Services) == 0 }

// celCostLimit bounds the work one rule may do, so a hostile policy cannot
// stall the emulator or the manager.
const celCostLimit = 100_000

// The bindings a rule's expression may read, as Exoscale documents them.
const (
	BindingService    = "service"
	BindingOperation  = "operation"
	BindingParameters = "parameters"
	BindingZone       = "zone"
	BindingNow        = "now"
	BindingSourceIP   = "source_ip"
	BindingAPIKey     = "api_key"
	BindingResources  = "resources"
	BindingIdentity   = "identity"
)

// RequestFacts are the bindings whose value depends on how, when and from
// where a key is used, not on what it is granted: a verdict that reads them
// cannot be known before the call.
var RequestFacts = []string{BindingZone, BindingNow, BindingSourceIP, BindingResources, BindingIdentity}

var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable(BindingService, cel.StringType),
		cel.Variable(BindingOperation, cel.StringType),
		cel.Variable(BindingParameters, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(BindingZone, cel.StringType),
		cel.Variable(BindingNow, cel.StringType),
		cel.Variable(BindingSourceIP, cel.StringType),
		cel.Variable(BindingAPIKey, cel.StringType),
		cel.Variable(BindingResources, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(BindingIdentity, cel.MapType(cel.StringType, cel.DynType)),
		cel.Function("inIpRange", cel.MemberOverload("string_inIpRange_string",
			[]*cel.Type{cel.StringType, cel.StringType}, cel.BoolType, cel.BinaryBinding(inIPRange))),
		cel.Function("has", cel.MemberOverload("map_has_string",
			[]*cel.Type{cel.MapType(cel.StringType, cel.DynType), cel.StringType}, cel.BoolType, cel.BinaryBinding(mapHas))),
	)
	if err != nil {
		panic(err)
	}
	return env
}()

// inIPRange is Exoscale's source_ip.inIpRange('CIDR').
func inIPRange(ip, cidr ref.Val) ref.Val {
	addr, err := netip.ParseAddr(string(ip.(types.String)))
	if err != nil {
		return types.NewErr("inIpRange: %v", err)
	}
	prefix, err := netip.ParsePrefix(string(cidr.(types.String)))
	if err != nil {
		return types.NewErr("inIpRange: %v", err)
	}
	return types.Bool(prefix.Contains(addr))
}

// mapHas is Exoscale's parameters.has('name').
func mapHas(m, key ref.Val) ref.Val {
	mapper, ok := m.(traits.Mapper)
	if !ok {
		return types.NewErr("has: not a map")
	}
	return mapper.Contains(key)
}

// Compiled is a validated policy, ready to evaluate.
type Compiled struct {
	source   Policy
	allowAll bool // an empty policy
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
	// reads are the request facts the expression reads.
	reads []string
}

// Compile validates p and compiles its rules. Any service class name is
// accepted: Exoscale has classes no catalogue operation belongs to.
func Compile(p Policy) (*Compiled, error) {
	compiled := &Compiled{source: p, services: map[string]compiledService{}}
	if p.Empty() {
		compiled.allowAll = true
		return compiled, nil
	}
	if p.DefaultServiceStrategy != "" && p.DefaultServiceStrategy != "allow" && p.DefaultServiceStrategy != "deny" {
		return nil, fmt.Errorf("default-service-strategy must be allow or deny, not %q", p.DefaultServiceStrategy)
	}
	literals := map[string]bool{}
	for name, service := range p.Services {
		if name == "" {
			return nil, fmt.Errorf("services: a class without a name")
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
				compiledRule, err := compileRule(rule, literals)
				if err != nil {
					return nil, fmt.Errorf("services.%s.rules[%d]: %w", name, i, err)
				}
				cs.rules = append(cs.rules, compiledRule)
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

func compileRule(rule PolicyRule, literals map[string]bool) (compiledRule, error) {
	if rule.Action != "allow" && rule.Action != "deny" {
		return compiledRule{}, fmt.Errorf("action must be allow or deny")
	}
	checked, issues := celEnv.Compile(rule.Expression)
	if issues != nil && issues.Err() != nil {
		return compiledRule{}, fmt.Errorf("expression: %v", issues.Err())
	}
	if checked.OutputType() != cel.BoolType {
		return compiledRule{}, fmt.Errorf("expression must be a boolean, not %s", checked.OutputType())
	}
	program, err := celEnv.Program(checked, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptPartialEval))
	if err != nil {
		return compiledRule{}, err
	}
	reads := map[string]bool{}
	visitor := ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.LiteralKind:
			if s, ok := e.AsLiteral().Value().(string); ok {
				literals[s] = true
			}
		case ast.IdentKind:
			reads[e.AsIdent()] = true
		}
	})
	ast.PostOrderVisit(checked.NativeRep().Expr(), visitor)
	cr := compiledRule{allow: rule.Action == "allow", program: program}
	for _, fact := range append(slices.Clone(RequestFacts), BindingAPIKey) {
		if reads[fact] {
			cr.reads = append(cr.reads, fact)
		}
	}
	return cr, nil
}

// Request is one call as a policy sees it. Unknown names the bindings the
// caller cannot know (RequestFacts when judging a key before it is used):
// a rule that needs one of them to decide makes the verdict depend on it.
type Request struct {
	// Class is the operation's service class; empty for an operation role
	// policies do not gate.
	Class      string
	Operation  string
	Parameters map[string]any
	Zone       string
	Now        string
	SourceIP   string
	APIKey     string
	Resources  map[string]any
	Identity   map[string]any
	Unknown    []string
}

// RequestOf is the request of a catalogue operation with string parameters.
func RequestOf(op catalog.Operation, parameters map[string]string) Request {
	return Request{Class: op.Class, Operation: op.Name, Parameters: Parameters(parameters)}
}

// Parameters turns string parameters into a request's parameters.
func Parameters(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Decision is the verdict of a policy on one call and what decided it.
type Decision struct {
	Allowed bool
	// DependsOn names the request facts the verdict depends on: when set,
	// Allowed is false and the call may or may not be allowed.
	DependsOn []string
	// Reason says which part of the policy decided, in words.
	Reason string
	// Rule is the index of the deciding rule of the class, or -1 when the
	// class's type or the default strategy decided.
	Rule int
}

// Decider is a policy, or the two levels of them, that judges requests.
type Decider interface {
	Decide(Request) Decision
	// Literals are string constants worth probing as bucket names.
	Literals() []string
}

// Allows evaluates the policy for one call of a catalogue operation.
func (p *Compiled) Allows(op catalog.Operation, parameters map[string]string) bool {
	return p.Decide(RequestOf(op, parameters)).Allowed
}

// Decide evaluates the policy for one request and says why. For type
// rules the first rule whose expression is true decides; a rule that fails
// to evaluate (a parameter the call does not have) concludes nothing; no
// match denies, whatever the default strategy.
func (p *Compiled) Decide(req Request) Decision {
	switch {
	case req.Class == "":
		return Decision{Allowed: true, Rule: -1, Reason: fmt.Sprintf("%s is not gated by role policies", req.Operation)}
	case p.allowAll:
		return Decision{Allowed: true, Rule: -1, Reason: "the policy is empty: it allows everything"}
	}
	cs, listed := p.services[req.Class]
	if !listed {
		strategy := p.source.DefaultServiceStrategy
		if strategy == "" {
			strategy = "deny"
		}
		return Decision{Allowed: strategy == "allow", Rule: -1, Reason: fmt.Sprintf(
			"class %s is not in the policy: default-service-strategy is %s", req.Class, strategy)}
	}
	switch cs.kind {
	case "allow", "deny":
		return Decision{Allowed: cs.kind == "allow", Rule: -1, Reason: fmt.Sprintf("class %s has type %s", req.Class, cs.kind)}
	}
	vars, err := req.activation()
	if err != nil {
		return Decision{Rule: -1, Reason: err.Error()}
	}
	for i, rule := range cs.rules {
		out, _, err := rule.program.Eval(vars)
		if err != nil {
			continue
		}
		expression := p.source.Services[req.Class].Rules[i].Expression
		if types.IsUnknown(out) {
			depends := intersect(rule.reads, req.Unknown)
			return Decision{DependsOn: depends, Rule: i, Reason: fmt.Sprintf(
				"services.%s.rules[%d] (%s) depends on %s: %s", req.Class, i, action(rule.allow), strings.Join(depends, ", "), expression)}
		}
		if matched, ok := out.Value().(bool); ok && matched {
			return Decision{Allowed: rule.allow, Rule: i, Reason: fmt.Sprintf(
				"services.%s.rules[%d] (%s) matches: %s", req.Class, i, action(rule.allow), expression)}
		}
	}
	return Decision{Rule: -1, Reason: fmt.Sprintf("no rule of class %s matches: denied", req.Class)}
}

func action(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func (req Request) activation() (any, error) {
	vars := map[string]any{
		BindingService: req.Class, BindingOperation: req.Operation,
		BindingParameters: orEmpty(req.Parameters), BindingZone: req.Zone, BindingNow: req.Now,
		BindingSourceIP: req.SourceIP, BindingAPIKey: req.APIKey,
		BindingResources: orEmpty(req.Resources), BindingIdentity: orEmpty(req.Identity),
	}
	if len(req.Unknown) == 0 {
		return vars, nil
	}
	patterns := make([]*cel.AttributePatternType, 0, len(req.Unknown))
	for _, name := range req.Unknown {
		patterns = append(patterns, cel.AttributePattern(name))
	}
	return cel.PartialVars(vars, patterns...)
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Levels are the organisation policy and a role policy: Exoscale allows a
// request only when both do, and a deny at either level wins.
type Levels struct {
	// Organization is nil when not known; it then allows everything, as
	// Exoscale's default organisation policy does.
	Organization *Compiled
	Role         *Compiled
}

// Decide evaluates the organisation policy, then the role's.
func (l Levels) Decide(req Request) Decision {
	if l.Organization != nil {
		org := l.Organization.Decide(req)
		if !org.Allowed {
			org.Reason = "organisation policy: " + org.Reason
			return org
		}
	}
	return l.Role.Decide(req)
}

// Literals are both levels' string constants.
func (l Levels) Literals() []string {
	literals := slices.Clone(l.Role.Literals())
	if l.Organization != nil {
		literals = append(literals, l.Organization.Literals()...)
	}
	sort.Strings(literals)
	return slices.Compact(literals)
}

// Literals are the string constants of the rules: the bucket names and
// other values worth probing when comparing two policies.
func (p *Compiled) Literals() []string { return p.literals }

// Source is the policy as it was given.
func (p *Compiled) Source() Policy { return p.source }

// Describe is a one-line summary of a policy for logs.
func (p Policy) Describe() string {
	if p.Empty() {
		return "empty(allow-all)"
	}
	names := make([]string, 0, len(p.Services))
	for name, s := range p.Services {
		names = append(names, name+"="+s.Type+"/"+strconv.Itoa(len(s.Rules)))
	}
	sort.Strings(names)
	return p.DefaultServiceStrategy + "[" + strings.Join(names, ",") + "]"
}

// Holding is what a key may call, judged before it is used.
type Holding struct {
	// Held are the operations, in both vocabularies, the key may call for
	// some call: without parameters, or naming one of the policies'
	// literals as the bucket. A legacy S3 name is held when all its S3
	// actions are.
	Held []string
	// Depends maps an operation that may or may not be allowed to the
	// request facts its verdict depends on.
	Depends map[string][]string
}

// Holds judges every catalogue operation for a key apiKey whose use is
// not known yet: the request facts are unknown, and a verdict that depends
// on them counts as not held (and is listed in Depends).
func Holds(d Decider, cat *catalog.Catalog, apiKey string) Holding {
	probes := []map[string]any{{}}
	for _, literal := range d.Literals() {
		probes = append(probes, map[string]any{"bucket": literal})
	}
	unknown := slices.Clone(RequestFacts)
	if apiKey == "" {
		unknown = append(unknown, BindingAPIKey)
	}
	holding := Holding{Depends: map[string][]string{}}
	held := map[string]bool{}
	for _, op := range cat.OperationsOf(true) {
		var depends []string
		for _, params := range probes {
			decision := d.Decide(Request{Class: op.Class, Operation: op.Name, Parameters: params, APIKey: apiKey, Unknown: unknown})
			if decision.Allowed {
				held[op.Name] = true
				depends = nil
				break
			}
			depends = append(depends, decision.DependsOn...)
		}
		if !held[op.Name] && len(depends) > 0 {
			sort.Strings(depends)
			holding.Depends[op.Name] = slices.Compact(depends)
		}
	}
	for _, op := range cat.Operations() {
		switch {
		case op.Vocabulary != catalog.Legacy:
			if held[op.Name] {
				holding.Held = append(holding.Held, op.Name)
			}
		case !slices.ContainsFunc(op.S3Actions, func(a string) bool { return !held[a] }):
			holding.Held = append(holding.Held, op.Name)
		}
	}
	return holding
}

// Equal reports whether two policies are the same as Exoscale reads them:
// an empty policy allows everything, an absent default-service-strategy
// beside services is deny, and no services is none. Rules are compared in
// order, since the first match decides.
func Equal(a, b Policy) bool {
	return reflect.DeepEqual(a.normalized(), b.normalized())
}

func (p Policy) normalized() Policy {
	if p.Empty() {
		return Policy{DefaultServiceStrategy: "allow", Services: map[string]ServicePolicy{}}
	}
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

// celQuote escapes a CEL string literal's content.
var celQuote = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

func celString(s string) string { return "'" + celQuote.Replace(s) + "'" }
