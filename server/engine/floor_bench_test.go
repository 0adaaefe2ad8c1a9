package engine

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func BenchmarkDecideFloor(b *testing.B) {
	mods := map[string]string{}
	for _, p := range Points {
		mods[string(p)+".rego"] = "package mcp." + string(p) + "\nallow := true\ndecision := {}\n"
	}
	e, err := New(b.Context(), Config{Modules: mods, Data: map[string]any{}})
	if err != nil {
		b.Fatal(err)
	}
	in, _ := ast.InterfaceToValue(map[string]any{"tool": "search_tools", "arguments": map[string]any{"query": "x"}})
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Decide(b.Context(), Tools, in)
		if err != nil || !d.Allow {
			b.Fatal(d, err)
		}
	}
}
