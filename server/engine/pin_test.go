package engine_test

import (
	"context"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/engine"
)

// A call that pinned the snapshot in force decides under it to its end,
// though a reload swapped in another; new calls get the new one.
func TestPinOutlivesAReload(t *testing.T) {
	build := func(denied []any) *engine.Engine {
		cfg, err := engine.Builtin(map[string]any{"tools": map[string]any{"allow_all": true, "denied": denied}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := build([]any{})
	in := engine.ToolInput{Tool: "web_search", Registered: true}.Value()
	pinned := e.Pin(t.Context())
	genBefore := e.Generation()

	e.Adopt(build([]any{"web_search"}))

	if d, err := e.Decide(pinned, engine.Tools, in); err != nil || !d.Allow {
		t.Errorf("pinned call: allow=%v err=%v, want the old snapshot's allow", d.Allow, err)
	}
	if d, err := e.Decide(t.Context(), engine.Tools, in); err != nil || d.Allow {
		t.Errorf("new call: allow=%v err=%v, want the new snapshot's deny", d.Allow, err)
	}
	if e.GenerationFor(pinned) != genBefore || e.GenerationFor(t.Context()) == genBefore {
		t.Errorf("generations: pinned %d (want %d), current %d", e.GenerationFor(pinned), genBefore, e.GenerationFor(t.Context()))
	}
	if e.Pin(pinned) != pinned {
		t.Error("pinning a pinned context again changed it")
	}
	// Another engine ignores this one's pin.
	other := build([]any{"web_search"})
	if d, _ := other.Decide(pinned, engine.Tools, in); d.Allow {
		t.Error("another engine decided under this engine's pinned snapshot")
	}
}

// Every decision names the revision of the policy that made it: a call
// pinned before a reload keeps the old one in each of its decisions,
// memoised or not, refused or decided.
func TestDecisionsNameTheirRevision(t *testing.T) {
	build := func(rev string, denied []any) *engine.Engine {
		cfg, err := engine.Builtin(map[string]any{"tools": map[string]any{"allow_all": true, "denied": denied}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Revision = &rev
		e, err := engine.New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// A bundle may have no revision: "" names it all the same.
	e := build("", []any{})
	ti := engine.ToolInput{Tool: "web_search", Registered: true}
	pinned := e.Pin(t.Context())
	e.Adopt(build("r2", []any{"web_search"}))

	check := func(name string, ctx context.Context, want string) {
		t.Helper()
		for i := range 2 { // the second answer may come from a memo
			for what, decide := range map[string]func() (engine.Decision, error){
				"Decide":     func() (engine.Decision, error) { return e.Decide(ctx, engine.Tools, ti.Value()) },
				"DecideTool": func() (engine.Decision, error) { return e.DecideTool(ctx, ti) },
				"RefuseTool": func() (engine.Decision, error) { return e.RefuseTool(ctx, ti) },
				"Refusal":    func() (engine.Decision, error) { return e.Refusal(ctx, engine.Tools, ti.Value()) },
			} {
				d, err := decide()
				if err != nil || d.Revision == nil || *d.Revision != want {
					t.Errorf("%s %s #%d: revision %v err %v, want %q", name, what, i, d.Revision, err, want)
				}
			}
		}
		if got := e.RevisionFor(ctx); got == nil || *got != want {
			t.Errorf("%s RevisionFor = %v, want %q", name, got, want)
		}
	}
	check("pinned", pinned, "")
	check("new", t.Context(), "r2")
}
