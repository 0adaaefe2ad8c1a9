package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/mcp-secure/mcp-secure/server/engine"
)

// explain evaluates point's decision for input again with OPA's tracer
// and writes the rules that fired, in the order they first did: those of
// the built-in modules and of the user's (marked "user"), nothing of the
// query OPA wraps around them. The decision itself is the engine's.
func explain(ctx context.Context, w io.Writer, cfg engine.Config, point engine.Point, input ast.Value) error {
	buf := topdown.NewBufferTracer()
	opts := []func(*rego.Rego){
		rego.Query("data.mcp." + string(point) + ".decision"),
		rego.ParsedInput(input),
		rego.Store(inmem.NewFromObject(map[string]any{"mcp": map[string]any{"policy": cfg.Data}})),
		rego.Capabilities(cfg.Capabilities),
		rego.StrictBuiltinErrors(true),
		rego.QueryTracer(buf),
	}
	for _, set := range []map[string]string{cfg.Modules, cfg.UserModules} {
		for _, name := range slices.Sorted(maps.Keys(set)) {
			opts = append(opts, rego.Module(name, set[name]))
		}
	}
	if _, err := rego.New(opts...).Eval(ctx); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("  rules that fired:\n")
	seen := map[string]bool{}
	n := 0
	for _, ev := range *buf {
		rule, ok := ev.Node.(*ast.Rule)
		if ev.Op != topdown.ExitOp || !ok || rule.Location == nil {
			continue
		}
		file := rule.Location.File
		_, builtin := cfg.Modules[file]
		_, user := cfg.UserModules[file]
		if !builtin && !user {
			continue
		}
		at := fmt.Sprintf("%s:%d", file, rule.Location.Row)
		if seen[at] {
			continue
		}
		seen[at] = true
		n++
		tag := ""
		if user {
			tag = " [user]"
		}
		text := firstLine(string(rule.Location.Text))
		if rule.Default {
			text = "default " + rule.Head.String()
		}
		fmt.Fprintf(&b, "    %s%s: %s\n", at, tag, text)
	}
	if n == 0 {
		b.WriteString("    (none: every rule is undefined for this input)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// firstLine is the first line of a rule's text, shortened.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "{"))
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
