package engine

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Most policies never look at input.session, and building it (copying a
// session's history, making a document of its events) is a large part
// of the input of a tool decision. A snapshot knows whether the tools
// decision point can read it: ReadsSession is false only when no rule or
// function it may evaluate refers to input.session, to input as a whole,
// or to a member of input chosen by a variable; the caller may then
// leave input.session empty, and no decision can tell.

// readsSession reports whether a rule the tools decision point may
// evaluate (a rule of package mcp.tools or below it, and every rule or
// function those depend on, by the compiler's dependency graph) may read
// input.session.
func readsSession(comp *ast.Compiler) bool {
	for _, r := range reachable(comp, ast.MustParseRef("data.mcp.tools")) {
		if r == nil || ruleReadsSession(r) {
			return true
		}
	}
	return false
}

// ruleReadsSession reports whether r (its head, body and else branches)
// refers to input.session, to input as a whole, or to a member of input
// chosen by a variable.
func ruleReadsSession(r *ast.Rule) bool {
	reads := false
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		if reads {
			return true
		}
		switch x := x.(type) {
		case ast.Var:
			// input on its own (a ref to input starts with it but is
			// handled below, without visiting its head).
			if x.Equal(ast.InputRootDocument.Value) {
				reads = true
			}
		case ast.Ref:
			if len(x) == 0 || !x[0].Equal(ast.InputRootDocument) {
				return false
			}
			if len(x) == 1 {
				reads = true // the whole input
				return true
			}
			key, ok := x[1].Value.(ast.String)
			if !ok || key == "session" {
				reads = true // a member chosen by a variable, or the session
				return true
			}
			for _, t := range x[2:] {
				vis.Walk(t)
			}
			return true
		}
		return false
	})
	vis.Walk(r)
	return reads
}

// ReadsSession reports whether the snapshot decisions under ctx come
// from may read input.session; when it cannot, the tools input may leave
// the session empty.
func (e *Engine) ReadsSession(ctx context.Context) bool {
	s := e.current(ctx)
	// Without a policy, assume it reads it. The tools part is compiled
	// before a snapshot is in force.
	return s == nil || s.c.byPoint[Tools].readsSession
}
