package secret

import (
	"errors"
	"fmt"
	"regexp"
	"text/template"
	"text/template/parse"
)

// The sandbox a tenant's template runs in. Templates come from any tenant
// and run in the manager that serves every tenant, so what they may do is
// bounded: no define, template or block (no recursion), limited nesting and
// no range inside a range, a printf without huge widths, capped output and
// a deadline.
const (
	// MaxNesting bounds how deep if, with and range may nest.
	MaxNesting = 5
	// MaxValueBytes caps one rendered value.
	MaxValueBytes = 64 << 10
	// MaxSecretBytes caps the rendered data of a whole Secret, well within
	// Kubernetes' 1 MiB.
	MaxSecretBytes = 256 << 10
)

var errTooLarge = errors.New("output too large")

// parseSandboxed parses one template and refuses what the sandbox does not
// allow. secretAllowed says whether .Secret may be used (data only).
func parseSandboxed(name, text string, secretAllowed bool) (*template.Template, error) {
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if len(t.Templates()) > 1 {
		return nil, errors.New("define and block are not allowed")
	}
	if t.Tree == nil || t.Root == nil {
		return t, nil
	}
	if err := checkNodes(t.Root, 0, false, secretAllowed); err != nil {
		return nil, err
	}
	return t, nil
}

func checkNodes(n parse.Node, depth int, inRange, secretAllowed bool) error {
	if depth > MaxNesting {
		return fmt.Errorf("if, with and range nest at most %d deep", MaxNesting)
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, child := range n.Nodes {
			if err := checkNodes(child, depth, inRange, secretAllowed); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		return errors.New("template is not allowed")
	case *parse.ActionNode:
		return checkPipe(n.Pipe, secretAllowed)
	case *parse.IfNode:
		return checkBranch(&n.BranchNode, depth, inRange, secretAllowed)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode, depth, inRange, secretAllowed)
	case *parse.RangeNode:
		if inRange {
			return errors.New("range inside range is not allowed")
		}
		return checkBranch(&n.BranchNode, depth, true, secretAllowed)
	}
	return nil
}

func checkBranch(b *parse.BranchNode, depth int, inRange, secretAllowed bool) error {
	if err := checkPipe(b.Pipe, secretAllowed); err != nil {
		return err
	}
	if err := checkNodes(b.List, depth+1, inRange, secretAllowed); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkNodes(b.ElseList, depth+1, inRange, secretAllowed)
	}
	return nil
}

func checkPipe(p *parse.PipeNode, secretAllowed bool) error {
	if p == nil {
		return nil
	}
	for _, cmd := range p.Cmds {
		for _, arg := range cmd.Args {
			if err := checkArg(arg, secretAllowed); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkArg(arg parse.Node, secretAllowed bool) error {
	var fields []string
	switch a := arg.(type) {
	case *parse.FieldNode:
		fields = a.Ident
	case *parse.VariableNode:
		fields = a.Ident[1:]
	case *parse.ChainNode:
		fields = a.Field
		if err := checkArg(a.Node, secretAllowed); err != nil {
			return err
		}
	case *parse.PipeNode:
		return checkPipe(a, secretAllowed)
	}
	for _, f := range fields {
		if f == "Secret" && !secretAllowed {
			return errors.New(".Secret may be used in secret.template.data only")
		}
	}
	return nil
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
