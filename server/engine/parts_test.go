package engine

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The built-in modules compile package by package, tools and the audit
// masks first: what a server's first answer waits for is their compile
// alone.
func TestBuiltinModulesCompileInParts(t *testing.T) {
	cfg, err := Builtin(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := prepareModules(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range c.parts {
		files := slices.Sorted(maps.Keys(p.mods))
		names = append(names, p.name+"="+strings.Join(files, ","))
	}
	want := []string{
		"tools=rego/mcp/tools/tools.rego",
		"audit=rego/mcp/audit/audit.rego",
		"network=rego/mcp/network/network.rego",
		"filesystem=rego/mcp/filesystem/filesystem.rego",
		"commands=rego/mcp/commands/commands.rego",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("parts %q, want %q", names, want)
	}
	if first := c.first(); len(first) != 2 || first[0].name != "tools" || first[1].name != "audit" {
		t.Errorf("first parts %v", first)
	}
}

// A module that reads another package's rules, data beyond the policy
// document, or data as a whole, a module outside the decision packages,
// and any user module keep every module in one part: a decision never
// misses a rule it reads.
func TestPlanKeepsWhatReachesAcrossTogether(t *testing.T) {
	cfg, err := Builtin(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	parse := func(t *testing.T, mods map[string]string) map[string]*ast.Module {
		t.Helper()
		out := map[string]*ast.Module{}
		for _, p := range parseModules(cfg.Capabilities, mods) {
			if p.err != nil {
				t.Fatal(p.err)
			}
			out[p.name] = p.m
		}
		return out
	}
	for name, tc := range map[string]struct {
		src   string // an extra built-in module
		user  bool   // given as a user module instead
		split bool
	}{
		"own package and policy data":   {src: "package mcp.tools\n\nx if data.mcp.tools.allow\ny := data.mcp.policy.tools\n", split: true},
		"a package below its own":       {src: "package mcp.network.lib\n\nz := data.mcp.network.lib.w\nw := 1\n", split: true},
		"another package's rule":        {src: "package mcp.tools\n\nx if data.mcp.network.allow\n"},
		"an import of another package":  {src: "package mcp.tools\n\nimport data.mcp.commands\n\nx if commands.allow\n"},
		"data as a whole":               {src: "package mcp.tools\n\nx := data\n"},
		"a package chosen by a value":   {src: "package mcp.tools\n\nx := data.mcp[input.p]\n"},
		"data outside mcp":              {src: "package mcp.tools\n\nx := data.other.y\n"},
		"with on another package":       {src: "package mcp.tools\n\nx if data.mcp.tools.allow with data.mcp.filesystem.allow as true\n"},
		"a rule head that reaches out":  {src: "package mcp.tools\n\nblocked[data.mcp.network.k].tool := \"evil\"\n"},
		"an else that reaches out":      {src: "package mcp.tools\n\nz := 1 if input.a\nelse := data.mcp.commands.allow\n"},
		"the mcp package itself":        {src: "package mcp\n\nq := 1\n"},
		"a package that is no decision": {src: "package mcp.helpers\n\nq := 1\n"},
		"a user module":                 {src: "package mcp.tools\n\ndeny contains \"no\" if input.tool == \"x\"\n", user: true},
	} {
		t.Run(name, func(t *testing.T) {
			builtin := parse(t, cfg.Modules)
			extra := parse(t, map[string]string{"extra.rego": tc.src})
			var user map[string]*ast.Module
			if tc.user {
				user = extra
			} else {
				maps.Copy(builtin, extra)
			}
			c := planParts(builtin, user)
			if split := len(c.parts) > 1; split != tc.split {
				t.Fatalf("split = %v, want %v (%d parts)", split, tc.split, len(c.parts))
			}
			if !tc.split && len(c.parts[0].mods) != len(builtin)+len(user) {
				t.Errorf("the one part holds %d modules, want %d", len(c.parts[0].mods), len(builtin)+len(user))
			}
		})
	}
}

// holdPart makes the compile of the parts named name wait until the
// returned function is called.
func holdPart(t *testing.T, name string) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	compilePart = func(p *part, caps *ast.Capabilities) {
		if p.name == name {
			<-gate
		}
		p.compile(caps)
	}
	var once bool
	release = func() {
		if !once {
			once = true
			close(gate)
		}
	}
	t.Cleanup(func() {
		release()
		compilePart = (*part).compile
	})
	return release
}

// A server's engine answers tool decisions (and masks) once their parts
// are compiled; a decision at a point whose part still compiles waits
// for it, and is denied if its context ends first; Wait reports the
// build once every part is done.
func TestStartAnswersBeforeTheLaterParts(t *testing.T) {
	dropPrebuild(t)
	release := holdPart(t, "network")
	cfg, err := Builtin(map[string]any{"tools": map[string]any{"allow_all": true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Start(t.Context(), cfg)
	d, err := e.DecideTool(t.Context(), ToolInput{Tool: "list_categories", Registered: true})
	if err != nil || !d.Allow {
		t.Fatalf("tool decision before the network part: %+v %v", d, err)
	}
	if _, err := e.Mask(t.Context(), map[string]any{"input": map[string]any{"stdin": "x"}}); err != nil {
		t.Fatalf("masks before the network part: %v", err)
	}
	if g := e.StableGeneration(Network); g != 0 {
		t.Errorf("StableGeneration(network) = %d while its part compiles", g)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	in := ast.MustParseTerm(`{"host": "example.com", "port": 443}`).Value
	d, err = e.Decide(ctx, Network, in)
	if d.Allow || !errors.Is(err, ErrEval) || !errors.Is(err, ErrNotReady) {
		t.Errorf("network decision before its part: %+v %v", d, err)
	}
	if err := e.Wait(ctx); err == nil {
		t.Error("Wait returned before the network part was compiled")
	}
	release()
	if err := e.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decide(t.Context(), Network, in); err != nil {
		t.Errorf("network decision once compiled: %v", err)
	}
	if g := e.StableGeneration(Network); g == 0 {
		t.Error("StableGeneration(network) = 0 once compiled")
	}
}

// A part that fails to compile fails the build: New returns its error,
// an engine from Start reports it from Wait and denies at its point, with
// the error.
func TestLaterPartFailureFailsTheBuild(t *testing.T) {
	dropPrebuild(t)
	cfg, err := Builtin(map[string]any{"tools": map[string]any{"allow_all": true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Modules = maps.Clone(cfg.Modules)
	cfg.Modules["rego/mcp/commands/commands.rego"] = "package mcp.commands\n\nallow if no_such_function(input.argv)\n"
	if _, err := New(t.Context(), cfg); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "no_such_function") {
		t.Fatalf("New: %v", err)
	}
	e := Start(t.Context(), cfg)
	if err := e.Wait(t.Context()); !errors.Is(err, ErrCompile) {
		t.Fatalf("Wait: %v", err)
	}
	d, err := e.Decide(t.Context(), Commands, ast.NewObject())
	if d.Allow || !errors.Is(err, ErrEval) || !strings.Contains(err.Error(), "no_such_function") {
		t.Errorf("commands decision: %+v %v", d, err)
	}
	if d, err := e.DecideTool(t.Context(), ToolInput{Tool: "list_categories", Registered: true}); err != nil || !d.Allow {
		t.Errorf("tool decision: %+v %v", d, err)
	}
}

// A part whose modules, compiled, read beyond their package fails (the
// plan reads the parsed modules; this holds whatever it missed).
func TestCompiledPartKeepsToItsPackage(t *testing.T) {
	m, err := ast.ParseModuleWithOpts("x.rego", "package mcp.tools\n\nblocked[data.mcp.network.k].tool := \"evil\"\n", ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	p := &part{name: "tools", points: []Point{Tools}, mods: map[string]*ast.Module{"x.rego": m}, done: make(chan struct{})}
	p.compile(nil)
	if !errors.Is(p.err, ErrCompile) || !strings.Contains(p.err.Error(), "beyond package mcp.tools") {
		t.Fatalf("err = %v", p.err)
	}
	whole := oneWhole(map[string]*ast.Module{"x.rego": m})
	whole.parts[0].compile(nil)
	if whole.parts[0].err != nil {
		t.Fatalf("as one part: %v", whole.parts[0].err)
	}
}

// Adopt takes nothing of an engine whose build failed in a later part,
// and an engine from Start whose first snapshot a reload replaced does
// not report that snapshot's parts.
func TestAdoptAndWaitKeepToTheSnapshotInForce(t *testing.T) {
	dropPrebuild(t)
	good, err := Builtin(map[string]any{"tools": map[string]any{"allow_all": true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	broken := good
	broken.Modules = maps.Clone(good.Modules)
	broken.Modules["rego/mcp/commands/commands.rego"] = "package mcp.commands\n\nallow if no_such_function(input.argv)\n"

	e, err := New(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	before := e.snap.Load()
	other := Start(t.Context(), broken)
	e.Adopt(other)
	if e.snap.Load() != before {
		t.Fatal("adopted a snapshot whose build failed")
	}

	gate := make(chan struct{})
	startBuild = func(ctx context.Context, cfg Config) (*snapshot, error) {
		<-gate
		return buildFirst(ctx, cfg)
	}
	t.Cleanup(func() { startBuild = buildFirst })
	release := func() { close(gate) }
	started := Start(t.Context(), broken)
	if err := started.Reload(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	release()
	if err := started.Wait(t.Context()); err != nil {
		t.Fatalf("Wait reports a replaced snapshot's build: %v", err)
	}
	if _, err := started.Decide(t.Context(), Commands, ast.NewObject()); err != nil {
		t.Fatalf("the snapshot in force: %v", err)
	}
}
