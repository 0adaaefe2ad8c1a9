package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// The catalog's view changes whenever what Entries and Permitted answer
// may: a new policy, other tools, another caller; with a pinned tool it
// cannot be told at all. Plugins keep answers under it (discovery).
func TestCatalogView(t *testing.T) {
	eng := toolsEngine(t)
	s, err := New(Options{Engine: eng, Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: &fakeAuditor{},
		Timeout: 10 * time.Second, Plugins: []string{"reload-test"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &catalog{pipe: s.pipe}
	call := &plugin.Call{Tool: "asks", Client: plugin.Client{Name: "a", Version: "1"}, ProtocolVersion: "2025-11-25"}
	view := func(call *plugin.Call) any {
		t.Helper()
		v, ok := c.View(t.Context(), call)
		if !ok {
			t.Fatal("no view")
		}
		return v
	}
	permitted := func() bool {
		ok, _ := c.Permitted(t.Context(), call, "other")
		return ok
	}

	v1 := view(call)
	if !permitted() {
		t.Fatal("other denied before the reload")
	}
	if v := view(call); v != v1 {
		t.Errorf("the view changed with nothing else: %v then %v", v1, v)
	}
	other := *call
	other.Client.Version = "2"
	if v := view(&other); v == v1 {
		t.Error("another client has the same view")
	}

	eng.Adopt(toolsEngine(t, "other"))
	v2 := view(call)
	if v2 == v1 {
		t.Error("the view did not change with the policy")
	}
	if permitted() {
		t.Error("other permitted after the reload")
	}

	asks, _ := s.pipe.tools.get("asks")
	s.pipe.tools.put(asks)
	v3 := view(call)
	if v3 == v2 {
		t.Error("the view did not change with the tools")
	}
	if v := view(call); v != v3 {
		t.Errorf("the view changed with nothing else: %v then %v", v3, v)
	}

	// A pinned definition's state is asked at each view: the view
	// changes with it, and comes back with it.
	var state atomic.Pointer[plugin.DefinitionState]
	state.Store(&plugin.DefinitionState{Hash: "h1", Pinned: "h1"})
	pinned := *asks
	pinned.Name = "pinned"
	pinned.Definition = func() plugin.DefinitionState { return *state.Load() }
	s.pipe.tools.put(&pinned)
	v4 := view(call)
	if v := view(call); v != v4 {
		t.Errorf("a view with a pinned tool changed with nothing else: %v then %v", v4, v)
	}
	state.Store(&plugin.DefinitionState{Changed: true, Hash: "h2", Pinned: "h1"})
	v5 := view(call)
	if v5 == v4 {
		t.Error("the view did not change with the pinned definition")
	}
	state.Store(&plugin.DefinitionState{Hash: "h2", Pinned: "h2"})
	if v := view(call); v == v5 || v == v4 {
		t.Error("the view did not change with the approval")
	}
	state.Store(&plugin.DefinitionState{Hash: "h1", Pinned: "h1"})
	if v := view(call); v != v4 {
		t.Errorf("the same state is another view: %v then %v", v4, v)
	}
	// A change announced is another view, though the states came back
	// as they were: an answer computed across it, partly under the
	// other state, is not kept under the first.
	plugin.DefinitionChanging()
	v6 := view(call)
	if v6 == v4 {
		t.Error("the view did not change with a definition change announced")
	}
	if v := view(call); v != v6 {
		t.Errorf("a view changed with nothing else: %v then %v", v6, v)
	}
	s.pipe.tools.del("pinned")
	if _, ok := c.View(t.Context(), call); !ok {
		t.Error("no view once the pinned tool is gone")
	}
}

// A Permitted that could not evaluate the policy (here a cancelled call)
// denies; the view changes, so an answer built on it is not kept as the
// answer of the view.
func TestCatalogViewAfterFailure(t *testing.T) {
	eng := toolsEngine(t)
	s, err := New(Options{Engine: eng, Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: &fakeAuditor{},
		Timeout: 10 * time.Second, Plugins: []string{"reload-test"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &catalog{pipe: s.pipe}
	call := &plugin.Call{Tool: "asks", Client: plugin.Client{Name: "a", Version: "1"}, ProtocolVersion: "2025-11-25"}
	before, ok := c.View(t.Context(), call)
	if !ok {
		t.Fatal("no view")
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if ok, reasons := c.Permitted(cancelled, call, "other"); ok {
		t.Fatalf("permitted on a cancelled call: %v", reasons)
	}
	after, ok := c.View(t.Context(), call)
	if !ok {
		t.Fatal("no view")
	}
	if after == before {
		t.Error("the view did not change with a failed evaluation")
	}
	if ok, reasons := c.Permitted(t.Context(), call, "other"); !ok {
		t.Errorf("other denied once evaluated: %v", reasons)
	}
	if v, _ := c.View(t.Context(), call); v != after {
		t.Errorf("the view changed with nothing else: %v then %v", after, v)
	}
}

// Whether a caller may use a tool is not kept when the policy reads the
// clock: the answer follows it, and the catalog has no view.
func TestPermittedFollowsTheClock(t *testing.T) {
	// The policy reads the engine's clock, which the test moves: before
	// the deadline, past it and back, whatever the machine's load. The
	// deadline is in the past, so a policy that read the system clock
	// would deny from the start.
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(at.Add(-time.Second).UnixNano())
	cfg, err := engine.Builtin(map[string]any{"tools": map[string]any{"allow_all": true}},
		map[string]string{"u.rego": fmt.Sprintf("package mcp.tools\n\ndeny contains \"too late\" if time.now_ns() > %d\n", at.UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clock = func() time.Time { return time.Unix(0, now.Load()) }
	eng, err := engine.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Engine: eng, Limiter: &fakeLimiter{limit: map[string]int{}}, Audit: &fakeAuditor{},
		Timeout: 10 * time.Second, Plugins: []string{"reload-test"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &catalog{pipe: s.pipe}
	call := &plugin.Call{Tool: "asks", Client: plugin.Client{Name: "a", Version: "1"}, ProtocolVersion: "2025-11-25"}
	if v, ok := c.View(t.Context(), call); ok {
		t.Errorf("a view of a policy that reads the clock: %v", v)
	}
	if ok, reasons := c.Permitted(t.Context(), call, "other"); !ok {
		t.Fatalf("denied before the time: %v", reasons)
	}
	now.Store(at.Add(time.Nanosecond).UnixNano())
	if ok, _ := c.Permitted(t.Context(), call, "other"); ok {
		t.Error("permitted after the time: a kept answer")
	}
	now.Store(at.UnixNano())
	if ok, reasons := c.Permitted(t.Context(), call, "other"); !ok {
		t.Errorf("denied with the clock back at the time: a kept denial: %v", reasons)
	}
}
