package engine

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestReadsSession(t *testing.T) {
	for name, tc := range map[string]struct {
		rule  string
		extra string // another module
		reads bool
	}{
		"builtin-only":           {rule: "", reads: false},
		"no/other-member":        {rule: `deny contains "x" if input.tool == "a"`, reads: false},
		"no/nested-member":       {rule: `deny contains "x" if input.client.name == "a"`, reads: false},
		"no/data-keyed-by-input": {rule: `deny contains "x" if data.mcp.policy.tools[input.tool]`, reads: false},
		"yes/session":            {rule: `deny contains "x" if count(input.session.history) > 3`, reads: true},
		"yes/session-indexed":    {rule: `deny contains "x" if input.session.counts.deny > 0`, reads: true},
		"yes/whole-input":        {rule: `deny contains "x" if { x := input; x.session }`, reads: true},
		"yes/variable-key":       {rule: `deny contains "x" if { some k; input[k].history }`, reads: true},
		"yes/function-arg":       {rule: `deny contains "x" if object.get(input, "session", null) != null`, reads: true},
		"yes/walk":               {rule: `deny contains "x" if { walk(input, [p, v]); p == ["session"] }`, reads: true},
		"yes/in-ref-key":         {rule: `deny contains "x" if data.mcp.policy.tools[input.session.x]`, reads: true},
		"yes/helper":             {rule: "s := input.session\ndeny contains \"x\" if s.dropped > 0", reads: true},
		"yes/function":           {rule: "f(n) if input.session.counts.deny > n\n\ndeny contains \"x\" if f(3)", reads: true},
		"yes/other-package": {rule: "import data.mcp.lib\n\ndeny contains \"x\" if lib.refused",
			extra: "package mcp.lib\n\nrefused if input.session.counts.deny > 0\n", reads: true},
		"no/other-package-unused": {rule: `deny contains "x" if input.tool == "a"`,
			extra: "package mcp.lib\n\nrefused if input.session.counts.deny > 0\n", reads: false},
	} {
		t.Run(name, func(t *testing.T) {
			var user map[string]string
			if tc.rule != "" {
				user = map[string]string{"u.rego": "package mcp.tools\n\n" + tc.rule + "\n"}
			}
			if tc.extra != "" {
				user["v.rego"] = tc.extra
			}
			cfg, err := Builtin(map[string]any{}, user)
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.ReadsSession(t.Context()); got != tc.reads {
				t.Errorf("ReadsSession = %v, want %v", got, tc.reads)
			}
		})
	}
}

// A rule on input.session decides differently with and without the
// history: what ReadsSession guards.
func TestReadsSessionDecides(t *testing.T) {
	cfg, err := Builtin(map[string]any{"tools": map[string]any{"allow_all": true}},
		map[string]string{"u.rego": "package mcp.tools\n\ndeny contains \"too many refusals\" if input.session.counts.deny > 0\n"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !e.ReadsSession(t.Context()) {
		t.Fatal("ReadsSession = false")
	}
	log := NewSessionLog(0, 0)
	log.Record("s", SessionEvent{Tool: "a", Kind: "tool_call", Result: "deny"})
	in := ToolInput{Tool: "a", Registered: true, Arguments: ast.NewObject(), Session: log.History("s")}
	d, err := e.Decide(t.Context(), Tools, in.Value())
	if err != nil || d.Allow {
		t.Fatalf("with the history: %+v, %v; want a deny", d, err)
	}
	in.Session = nil
	if d, err := e.Decide(t.Context(), Tools, in.Value()); err != nil || !d.Allow {
		t.Fatalf("without it: %+v, %v; want an allow", d, err)
	}
}
