package secret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// The sandbox a tenant's template runs in. Templates come from any tenant
// and run in the manager that serves every tenant, so what a render may cost
// is bounded before it starts, by its shape and its input, not by a wait:
//   - no define, template or block (no recursion), no call;
//   - range only over .Labels or .Annotations, never inside another range,
//     so every loop is as long as the AccessKey's metadata and no longer;
//   - the steps a render takes (the template's nodes, and each range's
//     body once per entry it ranges over) are counted before it runs, and
//     a render over MaxSteps is refused unrun;
//   - the functions that build strings (print, printf, html, js, urlquery,
//     upper, lower, trim, quote, b64enc) charge what they produce to a
//     budget of MaxWorkBytes per Secret, and printf takes no huge widths;
//   - the output is capped (MaxValueBytes, MaxSecretBytes).
//
// Comparisons (eq, lt, ...) read at most two values a step, so a render
// reads at most MaxSteps times the largest label or annotation. The render
// then runs to its end in the caller's goroutine: nothing is left running
// when it is refused (docs/guides/tenancy.md).
const (
	// MaxNesting bounds how deep if, with and range may nest.
	MaxNesting = 5
	// MaxValueBytes caps one rendered value.
	MaxValueBytes = 64 << 10
	// MaxSecretBytes caps the rendered data of a whole Secret, well within
	// Kubernetes' 1 MiB.
	MaxSecretBytes = 256 << 10
	// MaxSteps bounds the nodes one template executes, ranges unrolled.
	MaxSteps = 20_000
	// MaxWorkBytes bounds what the functions of one Secret's templates build.
	MaxWorkBytes = 4 << 20
)

var errTooLarge = errors.New("output too large")

// sandboxed is a parsed template and what running it costs.
type sandboxed struct {
	*template.Template
	// nodes are the template's nodes outside any range.
	nodes int
	// ranges are its ranges: the metadata each ranges over, and the nodes
	// of its body.
	ranges []rangeCost
}

type rangeCost struct {
	over  string // Labels or Annotations
	nodes int
}

// steps is what running the template over v costs.
func (t *sandboxed) steps(v Values) int {
	steps := t.nodes
	for _, r := range t.ranges {
		entries := len(v.Labels)
		if r.over == "Annotations" {
			entries = len(v.Annotations)
		}
		steps += (entries + 1) * r.nodes
	}
	return steps
}

// parseSandboxed parses one template and refuses what the sandbox does not
// allow. secretAllowed says whether .Secret may be used (data only); the
// template's functions charge work to budget.
func parseSandboxed(name, text string, secretAllowed bool, budget *workBudget) (*sandboxed, error) {
	t, err := template.New(name).Funcs(budget.funcs()).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if len(t.Templates()) > 1 {
		return nil, errors.New("define and block are not allowed")
	}
	out := &sandboxed{Template: t}
	if t.Tree == nil || t.Root == nil {
		return out, nil
	}
	c := &checker{secretAllowed: secretAllowed, out: out}
	if err := c.nodes(t.Root, 0, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// checker walks a template, refusing what the sandbox forbids and counting
// its nodes.
type checker struct {
	secretAllowed bool
	out           *sandboxed
}

// count adds a node to the range it is in, or to the template.
func (c *checker) count(inRange *rangeCost) {
	if inRange != nil {
		inRange.nodes++
	} else {
		c.out.nodes++
	}
}

func (c *checker) nodes(n parse.Node, depth int, inRange *rangeCost) error {
	if depth > MaxNesting {
		return fmt.Errorf("if, with and range nest at most %d deep", MaxNesting)
	}
	c.count(inRange)
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, child := range n.Nodes {
			if err := c.nodes(child, depth, inRange); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		return errors.New("template is not allowed")
	case *parse.ActionNode:
		return c.pipe(n.Pipe, inRange)
	case *parse.IfNode:
		return c.branch(&n.BranchNode, depth, inRange)
	case *parse.WithNode:
		return c.branch(&n.BranchNode, depth, inRange)
	case *parse.RangeNode:
		if inRange != nil {
			return errors.New("range inside range is not allowed")
		}
		over, ok := rangedMetadata(n.Pipe)
		if !ok {
			return fmt.Errorf("range goes over .Labels or .Annotations only, not %s: any other range has no bound", n.Pipe)
		}
		r := &rangeCost{over: over}
		if err := c.branch(&n.BranchNode, depth, r); err != nil {
			return err
		}
		c.out.ranges = append(c.out.ranges, *r)
	}
	return nil
}

// rangedMetadata reads a range's pipeline as .Labels or .Annotations (or
// $.Labels, $.Annotations), with or without variables declared.
func rangedMetadata(p *parse.PipeNode) (string, bool) {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return "", false
	}
	var fields []string
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode:
		fields = a.Ident
	case *parse.VariableNode:
		if a.Ident[0] != "$" {
			return "", false
		}
		fields = a.Ident[1:]
	default:
		return "", false
	}
	if len(fields) == 1 && (fields[0] == "Labels" || fields[0] == "Annotations") {
		return fields[0], true
	}
	return "", false
}

func (c *checker) branch(b *parse.BranchNode, depth int, inRange *rangeCost) error {
	if err := c.pipe(b.Pipe, inRange); err != nil {
		return err
	}
	if err := c.nodes(b.List, depth+1, inRange); err != nil {
		return err
	}
	if b.ElseList != nil {
		return c.nodes(b.ElseList, depth+1, inRange)
	}
	return nil
}

func (c *checker) pipe(p *parse.PipeNode, inRange *rangeCost) error {
	if p == nil {
		return nil
	}
	for _, cmd := range p.Cmds {
		c.count(inRange)
		for _, arg := range cmd.Args {
			c.count(inRange)
			if err := c.arg(arg, inRange); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *checker) arg(arg parse.Node, inRange *rangeCost) error {
	var fields []string
	switch a := arg.(type) {
	case *parse.IdentifierNode:
		if a.Ident == "call" {
			return errors.New("call is not allowed")
		}
	case *parse.FieldNode:
		fields = a.Ident
	case *parse.VariableNode:
		fields = a.Ident[1:]
	case *parse.ChainNode:
		fields = a.Field
		if err := c.arg(a.Node, inRange); err != nil {
			return err
		}
	case *parse.PipeNode:
		return c.pipe(a, inRange)
	}
	for _, f := range fields {
		if f == "Secret" && !c.secretAllowed {
			return errors.New(".Secret may be used in secret.template.data only")
		}
	}
	return nil
}

// workBudget is what the string-building functions of one Secret's
// templates may still produce, in bytes.
type workBudget struct{ left int }

var errWorkBudget = fmt.Errorf("the template's functions would build more than %d MiB", MaxWorkBytes>>20)

// charge spends n bytes of the budget, or fails once it is spent.
func (b *workBudget) charge(n int) error {
	b.left -= n
	if b.left < 0 {
		return errWorkBudget
	}
	return nil
}

// charged wraps a string function so that what it builds is charged.
func charged[A any](b *workBudget, f func(A) string) func(A) (string, error) {
	return func(a A) (string, error) {
		out := f(a)
		return out, b.charge(len(out))
	}
}

// funcs are the functions templates may call, charging b; they replace
// text/template's print, printf, println, html, js and urlquery.
func (b *workBudget) funcs() template.FuncMap {
	return template.FuncMap{
		"b64enc": charged(b, func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }),
		"upper":  charged(b, strings.ToUpper),
		"lower":  charged(b, strings.ToLower),
		"trim":   charged(b, strings.TrimSpace),
		"quote":  charged(b, strconv.Quote),
		"printf": func(format string, args ...any) (string, error) {
			out, err := safePrintf(format, args...)
			if err != nil {
				return "", err
			}
			return out, b.charge(len(out))
		},
		"print":   func(args ...any) (string, error) { out := fmt.Sprint(args...); return out, b.charge(len(out)) },
		"println": func(args ...any) (string, error) { out := fmt.Sprintln(args...); return out, b.charge(len(out)) },
		"html": func(args ...any) (string, error) {
			out := template.HTMLEscaper(args...)
			return out, b.charge(len(out))
		},
		"js": func(args ...any) (string, error) { out := template.JSEscaper(args...); return out, b.charge(len(out)) },
		"urlquery": func(args ...any) (string, error) {
			out := template.URLQueryEscaper(args...)
			return out, b.charge(len(out))
		},
	}
}

// hugeVerb finds a width or precision of four digits or more, or one taken
// from an argument.
var hugeVerb = regexp.MustCompile(`%[-+# 0]*(\*|[0-9]{4,}|[0-9]*\.(\*|[0-9]{4,}))`)

// safePrintf is fmt.Sprintf without widths or precisions that allocate
// without bound.
func safePrintf(format string, args ...any) (string, error) {
	if hugeVerb.MatchString(format) {
		return "", errors.New("printf widths and precisions are at most 3 digits")
	}
	return fmt.Sprintf(format, args...), nil
}

// cappedWriter fails a write that would take it over its limit, which
// stops the template's execution.
type cappedWriter struct {
	buf   []byte
	limit int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > w.limit {
		return 0, errTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}
