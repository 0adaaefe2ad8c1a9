package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/rego"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

func TestSessionLogKeepsTheLastEvents(t *testing.T) {
	l := engine.NewSessionLog(3, 2)
	for i := range 5 {
		l.Record("s1", engine.SessionEvent{Tool: fmt.Sprint("t", i), Kind: "tool_call", Result: "allow"})
	}
	l.Record("s1", engine.SessionEvent{Tool: "t5", Kind: "filesystem", Result: "deny"})
	l.Record("s1", engine.SessionEvent{Tool: "ignored", Kind: "tool_call", Result: "maybe"})
	l.Record("", engine.SessionEvent{Tool: "ignored", Kind: "tool_call", Result: "allow"})
	got := l.History("s1")
	want := &engine.SessionHistory{
		Events: []engine.SessionEvent{
			{Tool: "t3", Kind: "tool_call", Result: "allow"},
			{Tool: "t4", Kind: "tool_call", Result: "allow"},
			{Tool: "t5", Kind: "filesystem", Result: "deny"},
		},
		Counts:  map[string]int64{"allow": 5, "deny": 1, "error": 0},
		Dropped: 3,
	}
	if d := cmp.Diff(want, got, cmpopts.IgnoreUnexported(engine.SessionHistory{})); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
	// The documents built as events were recorded are those of the events.
	if got.Value().Compare(want.Value()) != 0 {
		t.Errorf("Value() = %v, want %v", got.Value(), want.Value())
	}
	if l.History("unknown") != nil {
		t.Error("a session without events has a history")
	}
}

// Counted events are in the counts and in dropped, never in the list:
// the counts are every decision, the list is bounded, and
// counts = len(history) + dropped.
func TestSessionLogCountsUnlistedEvents(t *testing.T) {
	l := engine.NewSessionLog(3, 2)
	read := engine.SessionEvent{Tool: "read", Kind: "filesystem", Result: "deny"}
	l.Record("s1", read)
	for range 100 {
		l.Count("s1", engine.SessionEvent{Tool: "x", Kind: "tool_call", Result: "deny"})
	}
	l.Record("s1", engine.SessionEvent{Tool: "list", Kind: "tool_call", Result: "allow"})
	l.Count("s1", engine.SessionEvent{Tool: "x", Kind: "tool_call", Result: "maybe"}) // not a result
	l.Count("", engine.SessionEvent{Tool: "x", Kind: "tool_call", Result: "deny"})    // no session
	got := l.History("s1")
	want := &engine.SessionHistory{
		Events:  []engine.SessionEvent{read, {Tool: "list", Kind: "tool_call", Result: "allow"}},
		Counts:  map[string]int64{"allow": 1, "deny": 101, "error": 0},
		Dropped: 100,
	}
	if d := cmp.Diff(want, got, cmpopts.IgnoreUnexported(engine.SessionHistory{})); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
	// Listed events past the bound push the oldest out, into dropped.
	for range 3 {
		l.Record("s1", engine.SessionEvent{Tool: "t", Kind: "tool_call", Result: "error"})
	}
	got = l.History("s1")
	var total int64
	for _, n := range got.Counts {
		total += n
	}
	if total != 105 || int64(len(got.Events))+got.Dropped != total || got.Dropped != 102 {
		t.Errorf("counts %v (total %d), %d listed, dropped %d", got.Counts, total, len(got.Events), got.Dropped)
	}
}

func TestSessionLogForgetsTheLeastRecentSession(t *testing.T) {
	l := engine.NewSessionLog(2, 2)
	ev := engine.SessionEvent{Tool: "t", Kind: "tool_call", Result: "allow"}
	l.Record("a", ev)
	l.Record("b", ev)
	l.Record("a", ev)
	l.Record("c", ev) // evicts b, the least recently active
	if l.Sessions() != 2 || l.History("b") != nil || l.History("a") == nil || l.History("c") == nil {
		t.Errorf("sessions kept: a=%v b=%v c=%v", l.History("a") != nil, l.History("b") != nil, l.History("c") != nil)
	}
}

func TestSessionHistoryValue(t *testing.T) {
	for name, tc := range map[string]struct {
		h    *engine.SessionHistory
		want string
	}{
		"empty": {nil, `{"counts": {"allow": 0, "deny": 0, "error": 0}, "dropped": 0, "history": []}`},
		"events": {&engine.SessionHistory{
			Events: []engine.SessionEvent{{Tool: "fixture_read", Kind: "filesystem", Result: "deny"}},
			Counts: map[string]int64{"deny": 1}, Dropped: 2,
		}, `{"counts": {"allow": 0, "deny": 1, "error": 0}, "dropped": 2, "history": [{"kind": "filesystem", "result": "deny", "tool": "fixture_read"}]}`},
	} {
		t.Run(name, func(t *testing.T) {
			if got := tc.h.Value(); got.Compare(ast.MustParseTerm(tc.want).Value) != 0 {
				t.Errorf("Value() = %v, want %s", got, tc.want)
			}
		})
	}
}

// The session keys are documented in the METADATA of package mcp.tools
// (TestInputsMatchTheirDocumentation checks the top-level ones).
func TestSessionKeysDocumented(t *testing.T) {
	mods, err := rego.Modules()
	if err != nil {
		t.Fatal(err)
	}
	meta, _, _ := strings.Cut(mods["rego/mcp/tools/tools.rego"], "\npackage ")
	h := &engine.SessionHistory{Events: []engine.SessionEvent{{Tool: "t", Kind: "k", Result: "allow"}}}
	var walk func(v ast.Value)
	walk = func(v ast.Value) {
		switch x := v.(type) {
		case ast.Object:
			for _, k := range x.Keys() {
				name := string(k.Value.(ast.String))
				if !strings.Contains(meta, name) {
					t.Errorf("input.session key %q is not documented in the METADATA of package mcp.tools", name)
				}
				walk(x.Get(k).Value)
			}
		case *ast.Array:
			x.Foreach(func(e *ast.Term) { walk(e.Value) })
		}
	}
	walk(h.Value())
}

// BenchmarkSessionHistoryFull is what input.session adds to a call of a
// session with a full history: copying it and building its document.
func BenchmarkSessionHistoryFull(b *testing.B) {
	l := engine.NewSessionLog(0, 0)
	for i := range engine.DefaultHistoryLen + 5 {
		l.Record("s", engine.SessionEvent{Tool: fmt.Sprint("tool_", i%7), Kind: "tool_call", Result: "allow"})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = l.History("s").Value()
	}
}
