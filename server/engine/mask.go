package engine

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// maskQuery is the audit mask rules' entry point: package mcp.audit,
// built-in rules plus the user's `mask contains ...`.
const maskQuery = "data.mcp.audit.mask"

// Mask evaluates data.mcp.audit.mask with the audit record as input and
// returns the set's members: JSON pointers to erase, or {"op", "path",
// "value"} objects, as OPA's decision-log masks. An undefined set is no
// masks. It implements the audit package's Masker; an error wraps
// [ErrEval] and the caller erases what the masks could not decide.
func (e *Engine) Mask(ctx context.Context, record map[string]any) ([]any, error) {
	s := e.snap.Load()
	in, err := ast.InterfaceToValue(record)
	if err != nil {
		return nil, fmt.Errorf("%w: audit mask input: %w", ErrEval, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	opts := append(s.opts[:len(s.opts):len(s.opts)], rego.EvalParsedInput(in))
	rs, err := s.mask.Eval(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEval, maskQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	switch v := rs[0].Expressions[0].Value.(type) {
	case []any:
		return v, nil
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: %s is a %T, not a set", ErrEval, maskQuery, v)
	}
}
