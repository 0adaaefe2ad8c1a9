package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
)

func memoEngine(t *testing.T, data map[string]any, rules string) *Engine {
	t.Helper()
	var user map[string]string
	if rules != "" {
		user = map[string]string{"u.rego": "package mcp.tools\n\n" + rules + "\n"}
	}
	cfg, err := Builtin(data, user)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func memoKeys(e *Engine) []string {
	m := memoOf(e, Tools)
	if m == nil {
		return nil
	}
	keys := []string{}
	for _, k := range m.keys {
		keys = append(keys, string(k.Value.(ast.String)))
	}
	return keys
}

// A point is memoised only when its rules read input through named
// members and call nothing that can change its answer.
func TestMemoPlan(t *testing.T) {
	for name, tc := range map[string]struct {
		rules string
		keys  []string // nil: not memoised
	}{
		"builtin":                    {"", []string{"registered", "tool", "tool_definition"}},
		"arguments":                  {`deny contains "x" if input.arguments.q == "bad"`, []string{"arguments", "registered", "tool", "tool_definition"}},
		"session":                    {`deny contains "x" if input.session.counts.deny > 2`, []string{"registered", "session", "tool", "tool_definition"}},
		"no/time":                    {`deny contains "x" if time.now_ns() > 0`, nil},
		"no/rand":                    {`deny contains "x" if rand.intn("k", 10) == 0`, nil},
		"no/uuid-in-helper":          {"id := uuid.rfc4122(\"k\")\n\ndeny contains id if input.tool == \"x\"", nil},
		"no/whole-input":             {`deny contains "x" if { i := input; i.tool == "x" }`, nil},
		"no/variable-member":         {`deny contains "x" if { some k; input[k] == "x" }`, nil},
		"no/with":                    {`deny contains "x" if { h with input.tool as "y" }` + "\n\nh if input.tool == \"y\"", nil},
		"no/function-nondeterminism": {"f(x) := time.now_ns() + x\n\ndeny contains \"x\" if f(1) < 0", nil},
	} {
		t.Run(name, func(t *testing.T) {
			e := memoEngine(t, map[string]any{"tools": map[string]any{"allow_all": true}}, tc.rules)
			if diff := cmp.Diff(tc.keys, memoKeys(e)); diff != "" {
				t.Errorf("memo keys (-want +got):\n%s", diff)
			}
		})
	}
}

// A memoised engine answers every input as one that evaluates each
// decision: same values, same decision; another value, its own.
func TestMemoAnswersAsEvaluation(t *testing.T) {
	rules := `deny contains sprintf("bad %v", [input.arguments.n]) if input.arguments.n == 1

deny contains "no q" if input.arguments.q == "bad"`
	data := map[string]any{"tools": map[string]any{"allow_all": true, "denied": []any{"blocked*"}}}
	memo := memoEngine(t, data, rules)
	plain := memoEngine(t, data, rules)
	plain.snap.Load().noMemo = true
	if memoOf(memo, Tools) == nil {
		t.Fatal("not memoised")
	}
	inputs := []string{
		`{"tool": "a", "registered": true, "arguments": {}}`,
		`{"tool": "a", "registered": true, "arguments": {"q": "bad"}}`,
		`{"tool": "a", "registered": true, "arguments": {"q": "good"}}`,
		`{"tool": "a", "registered": true, "arguments": {"n": 1}}`,
		`{"tool": "a", "registered": true, "arguments": {"n": 1.0}}`,
		`{"tool": "a", "registered": true, "arguments": {"n": 2}}`,
		`{"tool": "a", "registered": false, "arguments": {}}`,
		`{"tool": "blocked_x", "registered": true, "arguments": {}}`,
		`{"tool": "a", "registered": true}`,
		`{"tool": "a", "registered": true, "tool_definition": {"changed": true}}`,
		`{"tool": "a", "registered": true, "request_id": "other", "arguments": {}}`,
	}
	for round := range 3 {
		for _, src := range inputs {
			in := ast.MustParseTerm(src).Value
			want, werr := plain.Decide(t.Context(), Tools, in)
			got, gerr := memo.Decide(t.Context(), Tools, in)
			if diff := cmp.Diff(want, got); diff != "" || (werr == nil) != (gerr == nil) {
				t.Errorf("round %d, %s: Decide (-evaluated +memoised):\n%s %v %v", round, src, diff, werr, gerr)
			}
			want, werr = plain.Refusal(t.Context(), Tools, in)
			got, gerr = memo.Refusal(t.Context(), Tools, in)
			if diff := cmp.Diff(want, got); diff != "" || (werr == nil) != (gerr == nil) {
				t.Errorf("round %d, %s: Refusal (-evaluated +memoised):\n%s %v %v", round, src, diff, werr, gerr)
			}
		}
	}
	// Decisions of distinct values are kept apart; the reasons handed
	// out are the caller's to change.
	in := ast.MustParseTerm(inputs[1]).Value
	d, _ := memo.Decide(t.Context(), Tools, in)
	d.Reasons[0] = "changed"
	if d2, _ := memo.Decide(t.Context(), Tools, in); d2.Reasons[0] != "no q" {
		t.Errorf("a caller changed the memo: %q", d2.Reasons)
	}
}

// An evaluation that fails is not kept: it is decided again, and denied
// again.
func TestMemoKeepsNoErrors(t *testing.T) {
	e := memoEngine(t, map[string]any{"tools": map[string]any{"allow_all": true}},
		`deny contains "x" if to_number(input.arguments.s) > 1`)
	m := memoOf(e, Tools)
	if m == nil {
		t.Fatal("not memoised")
	}
	in := ast.MustParseTerm(`{"tool": "a", "registered": true, "arguments": {"s": "not a number"}}`).Value
	for range 2 {
		if d, err := e.Decide(t.Context(), Tools, in); err == nil || d.Allow {
			t.Fatalf("Decide = %+v, %v; want an error and a deny", d, err)
		}
	}
	if m.n != 0 {
		t.Errorf("%d decisions kept, want none", m.n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ok := ast.MustParseTerm(`{"tool": "a", "registered": true, "arguments": {"s": "1"}}`).Value
	if d, err := e.Decide(t.Context(), Tools, ok); err != nil || !d.Allow {
		t.Fatalf("Decide = %+v, %v; want an allow", d, err)
	}
	if d, err := e.Decide(ctx, Tools, ok); err == nil || d.Allow {
		t.Errorf("a cancelled decision = %+v, %v; want an error and a deny, memo or not", d, err)
	}
}

// A reload starts a new memo: the new policy decides.
func TestMemoFollowsReload(t *testing.T) {
	e := memoEngine(t, map[string]any{"tools": map[string]any{"allow_all": true}}, "")
	in := ToolInput{Tool: "a", Registered: true}.Value()
	if d, err := e.Decide(t.Context(), Tools, in); err != nil || !d.Allow {
		t.Fatalf("before: %+v, %v", d, err)
	}
	pinned := e.Pin(t.Context())
	e.Adopt(memoEngine(t, map[string]any{"tools": map[string]any{"allow_all": true, "denied": []any{"a"}}}, ""))
	if d, err := e.Decide(t.Context(), Tools, in); err != nil || d.Allow {
		t.Fatalf("after the reload: %+v, %v; want a deny", d, err)
	}
	if d, err := e.Decide(pinned, Tools, in); err != nil || !d.Allow {
		t.Fatalf("pinned to the old snapshot: %+v, %v; want its allow", d, err)
	}
}

// Decisions on large values are not kept: the memo stays small.
func TestMemoSkipsLargeKeys(t *testing.T) {
	e := memoEngine(t, map[string]any{"tools": map[string]any{"allow_all": true}},
		`deny contains "x" if input.arguments.q == "bad"`)
	m := memoOf(e, Tools)
	big := ToolInput{Tool: "a", Registered: true, Arguments: ast.NewObject(
		ast.Item(ast.StringTerm("q"), ast.StringTerm(strings.Repeat("x", 2*memoKeyBytes))))}.Value()
	small := ToolInput{Tool: "a", Registered: true}.Value()
	for _, in := range []ast.Value{big, big, small, small} {
		if d, err := e.Decide(t.Context(), Tools, in); err != nil || !d.Allow {
			t.Fatalf("Decide = %+v, %v", d, err)
		}
	}
	if m.n != 1 {
		t.Errorf("%d decisions kept, want 1 (the small one)", m.n)
	}
}

// DecideTool and RefuseTool answer as Decide and Refusal on the built
// document, memoised or not.
func TestDecideToolAsDecide(t *testing.T) {
	rules := `deny contains sprintf("q=%v", [input.arguments.q]) if input.arguments.q

deny contains "refused before" if input.session.counts.deny > 0

deny contains "old client" if input.client.version == "0"`
	data := map[string]any{"tools": map[string]any{"allow_all": true, "denied": []any{"blocked*"}}}
	log := NewSessionLog(0, 0)
	log.Record("s", SessionEvent{Tool: "a", Kind: "tool_call", Result: "deny"})
	args := ast.MustParseTerm(`{"q": "x"}`).Value
	inputs := []ToolInput{
		{Tool: "a", Registered: true},
		{Tool: "a", Registered: false},
		{Tool: "blocked_1", Registered: true},
		{Tool: "a", Registered: true, Arguments: args},
		{Tool: "a", Registered: true, Session: log.History("s")},
		{Tool: "a", Registered: true, Client: Client{Name: "c", Version: "0"}},
		{Tool: "a", Registered: true, Definition: ToolDefinition{Changed: true, Hash: "h", Pinned: "p"}},
		{Tool: "a", Registered: true, RequestID: "7", ProtocolVersion: "2025-11-25"},
	}
	for _, memo := range []bool{true, false} {
		for _, rules := range []string{"", rules} {
			e := memoEngine(t, data, rules)
			if !memo {
				e.snap.Load().noMemo = true
			}
			for round := range 2 {
				for i, in := range inputs {
					want, werr := e.Decide(t.Context(), Tools, in.Value())
					got, gerr := e.DecideTool(t.Context(), in)
					if diff := cmp.Diff(want, got); diff != "" || (werr == nil) != (gerr == nil) {
						t.Errorf("memo %v, rules %v, round %d, input %d: DecideTool (-Decide +DecideTool):\n%s", memo, rules != "", round, i, diff)
					}
					want, werr = e.Refusal(t.Context(), Tools, in.Value())
					got, gerr = e.RefuseTool(t.Context(), in)
					if diff := cmp.Diff(want, got); diff != "" || (werr == nil) != (gerr == nil) {
						t.Errorf("memo %v, rules %v, round %d, input %d: RefuseTool (-Refusal +RefuseTool):\n%s", memo, rules != "", round, i, diff)
					}
				}
			}
		}
	}
}
