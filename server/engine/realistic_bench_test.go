package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// realisticEngine is the engine the binary builds from the reference-format
// policy (server/policy/testdata/reference.yaml) with the example user
// rules loaded.
func realisticEngine(b *testing.B, withUserRules bool) *engine.Engine {
	b.Helper()
	b.Setenv("HOME", "/home/bench")
	pol, err := policy.Load("../policy/testdata/reference.yaml")
	if err != nil {
		b.Fatal(err)
	}
	extra := map[string]string{}
	files, _ := filepath.Glob("../../examples/rego/*.rego")
	for _, f := range files {
		if filepath.Ext(f) == ".rego" && !isTest(f) {
			src, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			extra[f] = string(src)
		}
	}
	if !withUserRules {
		extra = nil
	} else if len(extra) == 0 {
		b.Fatal("no example user rules found")
	}
	e, err := engine.New(b.Context(), builtinConfig(b, pol.Data(), extra))
	if err != nil {
		b.Fatal(err)
	}
	e.Warm(b.Context())
	return e
}

func isTest(f string) bool { return len(f) > 10 && f[len(f)-10:] == "_test.rego" }

// callInput builds the input of a tools/call decision from its raw
// arguments, the way the pipeline does.
func callInput(b *testing.B, tool string, raw []byte) ast.Value {
	var args any
	if err := json.Unmarshal(raw, &args); err != nil {
		b.Fatal(err)
	}
	argv, err := ast.InterfaceToValue(args)
	if err != nil {
		b.Fatal(err)
	}
	return ast.NewObject(
		ast.Item(ast.InternedTerm("tool"), ast.StringTerm(tool)),
		ast.Item(ast.InternedTerm("registered"), ast.InternedTerm(true)),
		ast.Item(ast.InternedTerm("arguments"), ast.NewTerm(argv)),
		ast.Item(ast.InternedTerm("client"), ast.NewTerm(ast.NewObject(
			ast.Item(ast.InternedTerm("name"), ast.StringTerm("claude-ai")),
			ast.Item(ast.InternedTerm("version"), ast.StringTerm("0.1.0"))))),
		ast.Item(ast.InternedTerm("protocol_version"), ast.StringTerm("2025-11-25")),
		ast.Item(ast.InternedTerm("request_id"), ast.StringTerm("42")),
	)
}

// BenchmarkToolDecision is one tools/call decision on the prepared query,
// with the reference policy and user rules: the figure the core issue
// targets (<= 20 µs, <= 100 allocations per allowed decision).
func BenchmarkToolDecision(b *testing.B) {
	for _, bc := range []struct {
		name, tool, query string
		userRules, allow  bool
	}{
		{"allow", "web_search", "golang generics tutorial", true, true},
		{"allow-builtin-rules-only", "web_search", "golang generics tutorial", false, true},
		{"deny-user-rule", "web_search", "admin password dump", true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := realisticEngine(b, bc.userRules)
			// The arguments arrive as JSON: each decision pays for
			// decoding them and building its input, as a call does.
			raw := []byte(`{"query":"` + bc.query + `","max_results":5}`)
			b.ReportAllocs()
			for b.Loop() {
				in := callInput(b, bc.tool, raw)
				d, err := e.Decide(b.Context(), engine.Tools, in)
				if err != nil || d.Allow != bc.allow {
					b.Fatal(d, err)
				}
			}
		})
	}
}
