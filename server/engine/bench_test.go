package engine

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func BenchmarkDecideToyAllow(b *testing.B) {
	e, err := New(b.Context(), testConfig(map[string]string{"user.rego": `package mcp.tools
deny contains "no deletes" if input.arguments.op == "delete"
`}))
	if err != nil {
		b.Fatal(err)
	}
	in, _ := ast.InterfaceToValue(map[string]any{"tool": "search_tools", "arguments": map[string]any{"query": "x"}})
	e.Warm(b.Context())
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Decide(b.Context(), Tools, in)
		if err != nil || !d.Allow {
			b.Fatal(d, err)
		}
	}
}
