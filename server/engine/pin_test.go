package engine_test

import (
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
