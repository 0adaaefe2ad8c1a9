package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// holdBuilds makes Start's builds wait until the returned function is
// called.
func holdBuilds(t *testing.T) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	startBuild = func(ctx context.Context, cfg Config) (*snapshot, error) {
		<-gate
		return build(ctx, cfg)
	}
	t.Cleanup(func() { startBuild = buildFirst })
	var once bool
	return func() {
		if !once {
			once = true
			close(gate)
		}
	}
}

// A decision asked for while the first snapshot is still building waits
// for it and is decided by the compiled policy: nothing is answered
// before.
func TestStartDecisionWaitsForBuild(t *testing.T) {
	release := holdBuilds(t)
	defer release()
	e := Start(t.Context(), testConfig(nil))
	type answer struct {
		d   Decision
		err error
	}
	got := make(chan answer, 2)
	go func() {
		d, err := e.Decide(t.Context(), Tools, input(t, map[string]any{"tool": "read_file"}))
		got <- answer{d, err}
	}()
	go func() {
		d, err := e.Decide(t.Context(), Tools, input(t, map[string]any{"tool": "danger_rm"}))
		got <- answer{d, err}
	}()
	select {
	case a := <-got:
		t.Fatalf("answered before the policy compiled: %+v", a)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	var allowed, denied int
	for range 2 {
		a := <-got
		if a.err != nil {
			t.Fatalf("err = %v", a.err)
		}
		if a.d.Allow {
			allowed++
		} else if len(a.d.Reasons) == 1 && a.d.Reasons[0] == `tool "danger_rm" is denied` {
			denied++
		}
	}
	if allowed != 1 || denied != 1 {
		t.Errorf("allowed %d, denied by the policy %d; want 1 and 1", allowed, denied)
	}
	if err := e.Wait(t.Context()); err != nil {
		t.Errorf("Wait = %v", err)
	}
	if e.Generation() == 0 {
		t.Error("no generation once built")
	}
}

// A build that fails makes every decision a deny (and every mask an
// error), and Wait returns the build's error.
func TestStartFailedBuildFailsClosed(t *testing.T) {
	cfg := testConfig(map[string]string{"mcp/tools/bad.rego": "package mcp.tools\n\nallow if {"})
	e := Start(t.Context(), cfg)
	if err := e.Wait(t.Context()); !errors.Is(err, ErrCompile) {
		t.Fatalf("Wait = %v, want ErrCompile", err)
	}
	d, err := e.Decide(t.Context(), Tools, input(t, map[string]any{"tool": "read_file"}))
	if d.Allow || !errors.Is(err, ErrEval) || !errors.Is(err, ErrNotReady) || !errors.Is(err, ErrCompile) {
		t.Errorf("Decide = %+v, %v; want a deny wrapping ErrEval, ErrNotReady and the build's error", d, err)
	}
	for name, decide := range map[string]func() (Decision, error){
		"DecideTool": func() (Decision, error) { return e.DecideTool(t.Context(), ToolInput{}) },
		"RefuseTool": func() (Decision, error) { return e.RefuseTool(t.Context(), ToolInput{}) },
		"Refusal":    func() (Decision, error) { return e.Refusal(t.Context(), Tools, input(t, map[string]any{})) },
	} {
		if d, err := decide(); d.Allow || !errors.Is(err, ErrEval) || !errors.Is(err, ErrNotReady) {
			t.Errorf("%s = %+v, %v; want a deny wrapping ErrEval and ErrNotReady", name, d, err)
		}
	}
	if !e.ReadsSession(t.Context()) {
		t.Error("ReadsSession says a policy that does not exist cannot read the session")
	}
	if _, err := e.Mask(t.Context(), map[string]any{"input": map[string]any{}}); !errors.Is(err, ErrNotReady) {
		t.Errorf("Mask err = %v, want ErrNotReady", err)
	}
	if e.MaskSkips(t.Context(), map[string]any{}) {
		t.Error("MaskSkips says no mask can match without a policy")
	}
	if g := e.Generation(); g != 0 {
		t.Errorf("Generation = %d, want 0", g)
	}
	if ctx := e.Pin(t.Context()); ctx != t.Context() {
		t.Error("Pin pinned a snapshot that does not exist")
	}
}

// A caller whose context ends while the build is under way gets a deny,
// not a wait without end.
func TestStartDecisionHonoursContext(t *testing.T) {
	release := holdBuilds(t)
	defer release()
	e := Start(t.Context(), testConfig(nil))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	d, err := e.Decide(ctx, Tools, input(t, map[string]any{"tool": "read_file"}))
	if d.Allow || !errors.Is(err, ErrNotReady) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Decide = %+v, %v; want a deny wrapping ErrNotReady and the deadline", d, err)
	}
	if err := e.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want the deadline", err)
	}
}

// A snapshot a reload put in force while the first build was under way
// is newer: the first build does not replace it when it ends.
func TestStartBuildDoesNotReplaceAReload(t *testing.T) {
	release := holdBuilds(t)
	e := Start(t.Context(), testConfig(nil))
	reloaded := testConfig(nil)
	reloaded.Data = map[string]any{"tools": map[string]any{"allowed": []any{"*"}, "denied": []any{"read_*"}}}
	if err := e.Reload(t.Context(), reloaded); err != nil {
		t.Fatal(err)
	}
	gen := e.Generation()
	release()
	if err := e.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.Generation() != gen {
		t.Errorf("generation %d after the first build ended, want the reload's %d", e.Generation(), gen)
	}
	if d, _ := e.Decide(t.Context(), Tools, input(t, map[string]any{"tool": "read_file"})); d.Allow {
		t.Error("read_file allowed: the first build replaced the reload")
	}
}

// TestFirstModuleProblemReported: modules are parsed side by side, but
// the problem reported is the first in order (built-in modules, then the
// user's, each by name), as parsing them one after the other finds it.
func TestFirstModuleProblemReported(t *testing.T) {
	for range 20 { // side by side: any finishing order
		cfg, err := Builtin(map[string]any{}, map[string]string{
			"b.rego": "package mcp.tools\n\ndeny contains x if {",
			"a.rego": "package mcp.tools\n\nallow if {",
			"c.rego": "package mcp.tools\n\ndeny contains \"c\" if true\n",
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), "a.rego") || strings.Contains(err.Error(), "b.rego") {
			t.Fatalf("error %v, want a.rego's only", err)
		}
	}
}
