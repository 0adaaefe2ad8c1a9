package server

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// countingEngine counts the tool decisions the engine evaluates.
type countingEngine struct {
	*engine.Engine
	n atomic.Int64
}

func (e *countingEngine) DecideTool(ctx context.Context, in engine.ToolInput) (engine.Decision, error) {
	e.n.Add(1)
	return e.Engine.DecideTool(ctx, in)
}

// statePlugin's one tool has a pinned definition whose state the test
// sets.
type statePlugin struct {
	state *atomic.Pointer[plugin.DefinitionState]
}

func (statePlugin) Info() plugin.Info { return plugin.Info{Name: "state-test", Version: "0.0.1"} }

func (p statePlugin) Tools() []plugin.Tool {
	return []plugin.Tool{{Name: "pinned_tool", InputSchema: json.RawMessage(`{"type":"object"}`),
		Definition: func() plugin.DefinitionState { return *p.state.Load() },
		Handler:    func(context.Context, *plugin.Call) (*plugin.Result, error) { return &plugin.Result{Text: "ok"}, nil }}}
}

// A pinned tool's permit is kept while its definition's state is the
// same, and decided afresh the moment the state changes (a changed
// definition, then an approval): discovery does not evaluate it per
// request, and never answers from a state that is gone.
func TestPermitOfPinnedToolFollowsItsState(t *testing.T) {
	eng := &countingEngine{Engine: toolsEngine(t)}
	var state atomic.Pointer[plugin.DefinitionState]
	state.Store(&plugin.DefinitionState{Hash: "h1", Pinned: "h1"})
	s, err := New(Options{Engine: eng, Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: &fakeAuditor{},
		Timeout: 10 * time.Second, Plugins: []string{}, Extra: []plugin.Plugin{statePlugin{&state}}})
	if err != nil {
		t.Fatal(err)
	}
	id := identity{client: plugin.Client{Name: "a", Version: "1"}, protocol: "2025-11-25"}
	step := func(what string, want bool, decisions int64) {
		t.Helper()
		before := eng.n.Load()
		for range 3 {
			if ok, reasons := s.pipe.permitted(t.Context(), id, "pinned_tool"); ok != want {
				t.Fatalf("%s: permitted = %v (%v), want %v", what, ok, reasons, want)
			}
		}
		if got := eng.n.Load() - before; got != decisions {
			t.Errorf("%s: %d decisions for 3 asks, want %d", what, got, decisions)
		}
	}
	step("pinned", true, 1)
	step("pinned again", true, 0)
	state.Store(&plugin.DefinitionState{Changed: true, Hash: "h2", Pinned: "h1"})
	step("changed", false, 1)
	state.Store(&plugin.DefinitionState{Hash: "h2", Pinned: "h2"})
	step("approved", true, 1)
	state.Store(&plugin.DefinitionState{Changed: true, Hash: "h2", Pinned: ""})
	step("pin removed", false, 1)
}
