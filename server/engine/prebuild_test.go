package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// dropPrebuild forgets a prebuild a test left.
func dropPrebuild(t *testing.T) {
	t.Cleanup(func() {
		prebuilt.mu.Lock()
		prebuilt.p = nil
		prebuilt.mu.Unlock()
	})
}

func pending() bool {
	prebuilt.mu.Lock()
	defer prebuilt.mu.Unlock()
	return prebuilt.p != nil
}

// The prebuild serves the first build of the built-in configuration,
// whatever its data, once: that engine decides as one that compiled
// everything itself.
func TestPrebuildServesTheFirstBuild(t *testing.T) {
	dropPrebuild(t)
	data := map[string]any{"tools": map[string]any{"allow_all": true, "denied": []any{"web_search"}}}
	cfg, err := Builtin(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	Prebuild()
	pre, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if pending() {
		t.Fatal("the first build of the built-in configuration did not take the prebuild")
	}
	own, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if pre.snap.Load().c.byPoint[Tools].comp == own.snap.Load().c.byPoint[Tools].comp {
		t.Fatal("two engines share one compile")
	}
	for _, tool := range []string{"web_search", "list_categories", "nope"} {
		in := ToolInput{Tool: tool, Registered: tool != "nope"}.Value()
		a, errA := pre.Decide(t.Context(), Tools, in)
		b, errB := own.Decide(t.Context(), Tools, in)
		if a.Allow != b.Allow || strings.Join(a.Reasons, ";") != strings.Join(b.Reasons, ";") || (errA == nil) != (errB == nil) {
			t.Errorf("%s: prebuilt %+v %v, own %+v %v", tool, a, errA, b, errB)
		}
	}
	if d, _ := pre.Decide(t.Context(), Tools, ToolInput{Tool: "web_search", Registered: true}.Value()); d.Allow {
		t.Error("the prebuilt engine ignored the policy's data")
	}
}

// A configuration with user modules takes the prebuild's parsed built-in
// modules only: its own are parsed, checked and compiled with them, and
// their problems are reported as ever.
func TestPrebuildWithUserModules(t *testing.T) {
	data := map[string]any{"tools": map[string]any{"allow_all": true}}
	for name, tc := range map[string]struct {
		user map[string]string
		err  string // "" means it builds
	}{
		"a rule that tightens": {user: map[string]string{"u.rego": "package mcp.tools\n\ndeny contains \"no web\" if input.tool == \"web_search\"\n"}},
		"a parse error":        {user: map[string]string{"u.rego": "package mcp.tools\n\nallow if {"}, err: "u.rego"},
		"a built-in's name":    {user: map[string]string{"rego/mcp/tools/tools.rego": "package mcp.tools\n"}, err: "module given twice"},
	} {
		t.Run(name, func(t *testing.T) {
			dropPrebuild(t)
			cfg, err := Builtin(data, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			if tc.err == "" && len(cfg.Modules) == 0 {
				t.Fatal("no built-in modules")
			}
			Prebuild()
			e, err := New(t.Context(), cfg)
			if pending() {
				t.Fatal("the build did not take the prebuild's parsed modules")
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(t.Context(), Tools, ToolInput{Tool: "web_search", Registered: true}.Value())
			if err != nil || d.Allow || !strings.Contains(strings.Join(d.Reasons, ";"), "no web") {
				t.Errorf("decision %+v %v, want the user's deny", d, err)
			}
		})
	}
}

// Another configuration (other modules, other capabilities) leaves the
// prebuild alone, and a cancelled wait gives it up.
func TestPrebuildOnlyForItsConfiguration(t *testing.T) {
	dropPrebuild(t)
	cfg, err := Builtin(map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	Prebuild()
	other := cfg
	other.Capabilities = ast.CapabilitiesForThisVersion()
	if _, err := New(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	changed := cfg
	changed.Modules = map[string]string{}
	for k, v := range cfg.Modules {
		changed.Modules[k] = v
	}
	for k := range changed.Modules {
		changed.Modules[k] += "\n# changed\n"
		break
	}
	if _, err := New(t.Context(), changed); err != nil {
		t.Fatal(err)
	}
	if !pending() {
		t.Fatal("a build of another configuration took the prebuild")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if c, pre := takePrebuilt(ctx, cfg); pending() || c != nil || pre != nil {
		t.Errorf("a cancelled wait: taken %v, compile %v, parsed %v", !pending(), c != nil, pre != nil)
	}
}
