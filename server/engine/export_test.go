package engine

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
)

// WithoutMemo makes e evaluate every decision of its current snapshot.
func WithoutMemo(e *Engine) { e.snap.Load().noMemo = true }

// memoOf is the memo of point in e's current snapshot, once its part is
// compiled.
func memoOf(e *Engine, point Point) *decisionMemo {
	p := e.snap.Load().c.byPoint[point]
	<-p.done
	return p.memos[point]
}

// NewWhole is New with cfg's modules compiled as one part, as a
// configuration with user modules is.
func NewWhole(ctx context.Context, cfg Config) (*Engine, error) {
	e, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := *e.snap.Load()
	mods := map[string]*ast.Module{}
	for _, p := range parseModules(cfg.Capabilities, cfg.Modules, cfg.UserModules) {
		if p.err != nil {
			return nil, p.err
		}
		mods[p.name] = p.m
	}
	c := oneWhole(mods)
	c.builtinMasks = s.c.builtinMasks
	c.compileParts(cfg.Capabilities, 1)
	if err := waitFor(ctx, c.parts); err != nil {
		return nil, err
	}
	s.c = c
	whole := &Engine{}
	whole.snap.Store(&s)
	return whole, nil
}
