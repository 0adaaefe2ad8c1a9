package engine

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maskQuery is the audit mask rules' entry point: package mcp.audit,
// built-in rules plus the user's `mask contains ...`.
const maskQuery = "data.mcp.audit.mask"

// maskVar binds the mask set in the compiled query.
var maskVar = ast.Var("mcp_mask")

func compileMask(comp *ast.Compiler) (ast.Body, error) {
	return compileBinding(comp, maskVar, maskQuery)
}

// Mask evaluates data.mcp.audit.mask with the audit record as input and
// returns the set's members: JSON pointers to erase, or {"op", "path",
// "value"} objects, as OPA's decision-log masks. An undefined set is no
// masks. It implements the audit package's Masker. It evaluates with
// topdown directly, as the allow hot path does, under the decision
// deadline; an error wraps [ErrEval] and the caller erases what the masks
// could not decide.
func (e *Engine) Mask(ctx context.Context, record map[string]any) ([]any, error) {
	s := e.current(ctx)
	if s == nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEval, maskQuery, e.notReady(ctx))
	}
	if s.c.builtinMasks && !maskMayMatch(record) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrEval, maskQuery, err)
		}
		return nil, nil
	}
	in, err := ast.InterfaceToValue(record)
	if err != nil {
		return nil, fmt.Errorf("%w: audit mask input: %w", ErrEval, err)
	}
	// As OPA's decision-log masking: a built-in that fails on a value the
	// client chose (to_number("abc")) leaves its rule undefined instead of
	// failing every mask, which would erase the input.
	mp := s.c.mask
	if err := mp.wait(ctx); err != nil {
		return nil, fmt.Errorf("%w: %s: %w: %w", ErrEval, maskQuery, ErrNotReady, err)
	}
	set, results, err := s.eval(ctx, mp.comp, mp.maskQuery, maskVar, in, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEval, maskQuery, err)
	}
	if results == 0 || set == nil {
		return nil, nil
	}
	if results > 1 {
		return nil, fmt.Errorf("%w: %s has %d values", ErrEval, maskQuery, results)
	}
	v, err := ast.JSON(set)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEval, maskQuery, err)
	}
	switch x := v.(type) {
	case []any:
		return x, nil
	default:
		return nil, fmt.Errorf("%w: %s is a %T, not a set", ErrEval, maskQuery, v)
	}
}
