package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/engine"
)

// lint is `opa check --strict` over the built-in and the user's modules
// under the capabilities the server runs with: every parse and compile
// error, each as "file:line: code: message", in file order.
func lint(cfg engine.Config) []string {
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true, Capabilities: cfg.Capabilities}
	parsed := map[string]*ast.Module{}
	var errs ast.Errors
	all := maps.Clone(cfg.Modules)
	maps.Copy(all, cfg.UserModules)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		m, err := ast.ParseModuleWithOpts(name, all[name], opts)
		if err != nil {
			errs = append(errs, asErrors(err)...)
			continue
		}
		parsed[name] = m
	}
	if len(errs) == 0 {
		comp := ast.NewCompiler().
			SetErrorLimit(0).
			WithCapabilities(cfg.Capabilities).
			WithEnablePrintStatements(true).
			WithStrict(true).
			WithUseTypeCheckAnnotations(true)
		if comp.Compile(parsed); comp.Failed() {
			errs = comp.Errors
		}
	}
	slices.SortStableFunc(errs, func(a, b *ast.Error) int {
		if a.Location == nil || b.Location == nil {
			return 0
		}
		return cmp.Or(cmp.Compare(a.Location.File, b.Location.File), cmp.Compare(a.Location.Row, b.Location.Row))
	})
	out := make([]string, len(errs))
	for i, e := range errs {
		loc := "?"
		if e.Location != nil {
			loc = fmt.Sprintf("%s:%d", e.Location.File, e.Location.Row)
		}
		out[i] = fmt.Sprintf("%s: %s: %s", loc, e.Code, e.Message)
	}
	return out
}

// asErrors unpacks a parser error into its ast.Errors.
func asErrors(err error) ast.Errors {
	if errs, ok := err.(ast.Errors); ok {
		return errs
	}
	return ast.Errors{ast.NewError(ast.ParseErr, nil, "%v", err)}
}
