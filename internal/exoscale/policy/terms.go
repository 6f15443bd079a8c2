package policy

import (
	"fmt"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/parser"
)

// Subjects a Term may constrain: the only two exokey's compiler writes.
const (
	SubjectOperation = "operation"
	SubjectBucket    = "parameters.bucket"
)

// Term is one conjunct of a rule expression of the shape exokey compiles:
// `SUBJECT == 'v'` or `SUBJECT in ['v', ...]`.
type Term struct {
	Subject string
	Values  []string
}

// Conjuncts reads expression as `term && term && ...`. A part of any other
// shape is returned in the error, as CEL source, so a caller can say
// exactly what it cannot express.
func Conjuncts(expression string) ([]Term, error) {
	parsed, issues := celEnv.Parse(expression)
	if issues != nil && issues.Err() != nil {
		return nil, fmt.Errorf("expression: %v", issues.Err())
	}
	info := parsed.NativeRep().SourceInfo()
	var terms []Term
	var walk func(e ast.Expr) error
	walk = func(e ast.Expr) error {
		if e.Kind() == ast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd {
			for _, arg := range e.AsCall().Args() {
				if err := walk(arg); err != nil {
					return err
				}
			}
			return nil
		}
		term, ok := termOf(e)
		if !ok {
			source, err := parser.Unparse(e, info)
			if err != nil {
				source = expression
			}
			return &UnsupportedTermError{Source: source}
		}
		terms = append(terms, term)
		return nil
	}
	if err := walk(parsed.NativeRep().Expr()); err != nil {
		return nil, err
	}
	return terms, nil
}

// UnsupportedTermError is a part of an expression that is not a Term.
type UnsupportedTermError struct {
	// Source is the part, as CEL.
	Source string
}

func (e *UnsupportedTermError) Error() string {
	return fmt.Sprintf("`%s` is not a condition on operation or parameters.bucket by == or in", e.Source)
}

func termOf(e ast.Expr) (Term, bool) {
	if e.Kind() != ast.CallKind {
		return Term{}, false
	}
	call := e.AsCall()
	args := call.Args()
	if len(args) != 2 {
		return Term{}, false
	}
	switch call.FunctionName() {
	case operators.Equals:
		subject, literal := args[0], args[1]
		if subjectOf(subject) == "" {
			subject, literal = literal, subject // 'v' == operation
		}
		value, ok := stringLiteral(literal)
		if name := subjectOf(subject); name != "" && ok {
			return Term{Subject: name, Values: []string{value}}, true
		}
	case operators.In:
		name := subjectOf(args[0])
		if name == "" || args[1].Kind() != ast.ListKind {
			return Term{}, false
		}
		var values []string
		for _, element := range args[1].AsList().Elements() {
			value, ok := stringLiteral(element)
			if !ok {
				return Term{}, false
			}
			values = append(values, value)
		}
		return Term{Subject: name, Values: values}, len(values) > 0
	}
	return Term{}, false
}

// subjectOf names operation, parameters.bucket or parameters['bucket'].
func subjectOf(e ast.Expr) string {
	switch e.Kind() {
	case ast.IdentKind:
		if e.AsIdent() == "operation" {
			return SubjectOperation
		}
	case ast.SelectKind:
		sel := e.AsSelect()
		if !sel.IsTestOnly() && sel.FieldName() == "bucket" && isIdent(sel.Operand(), "parameters") {
			return SubjectBucket
		}
	case ast.CallKind:
		call := e.AsCall()
		if call.FunctionName() == operators.Index && len(call.Args()) == 2 && isIdent(call.Args()[0], "parameters") {
			if key, ok := stringLiteral(call.Args()[1]); ok && key == "bucket" {
				return SubjectBucket
			}
		}
	}
	return ""
}

func isIdent(e ast.Expr, name string) bool {
	return e.Kind() == ast.IdentKind && e.AsIdent() == name
}

func stringLiteral(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().Value().(string)
	return s, ok
}
