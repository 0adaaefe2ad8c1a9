package engine

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

const toolsModule = `package mcp.tools

default allow := false

allow if {
	some pattern in data.mcp.policy.tools.allowed
	glob.match(pattern, [], input.tool)
	count(deny) == 0
}

deny contains sprintf("tool %q is denied", [input.tool]) if {
	some pattern in data.mcp.policy.tools.denied
	glob.match(pattern, [], input.tool)
}

default decision := {"allow": false, "reasons": ["no policy decision"]}

decision := {"allow": allow, "reasons": sort(deny)}
`

func testConfig(extra map[string]string) Config {
	mods := map[string]string{"mcp/tools/tools.rego": toolsModule}
	for k, v := range extra {
		mods[k] = v
	}
	return Config{
		Modules: mods,
		Data: map[string]any{"tools": map[string]any{
			"allowed": []any{"*"},
			"denied":  []any{"danger_*"},
		}},
	}
}

func input(t *testing.T, v map[string]any) ast.Value {
	t.Helper()
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return val
}

func TestDecide(t *testing.T) {
	userRule := `package mcp.tools

deny contains "no deletes on fridays" if input.arguments.op == "delete"
`
	e, err := New(t.Context(), testConfig(map[string]string{"user/rule.rego": userRule}))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		in          map[string]any
		allow       bool
		wantReasons []string
	}{
		"allow/plain":         {map[string]any{"tool": "search_tools", "arguments": map[string]any{}}, true, nil},
		"deny/builtin-glob":   {map[string]any{"tool": "danger_zone", "arguments": map[string]any{}}, false, []string{`tool "danger_zone" is denied`}},
		"deny/user-rule":      {map[string]any{"tool": "x", "arguments": map[string]any{"op": "delete"}}, false, []string{"no deletes on fridays"}},
		"deny/both-sorted":    {map[string]any{"tool": "danger_x", "arguments": map[string]any{"op": "delete"}}, false, []string{"no deletes on fridays", `tool "danger_x" is denied`}},
		"deny/missing-fields": {map[string]any{}, false, []string{"denied by policy"}},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := e.Decide(t.Context(), Tools, input(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || !slices.Equal(d.Reasons, tc.wantReasons) {
				t.Errorf("got %+v, want allow=%v reasons=%q", d, tc.allow, tc.wantReasons)
			}
		})
	}
}

func TestDecideFailsClosed(t *testing.T) {
	for name, tc := range map[string]struct {
		point   Point
		modules map[string]string
		timeout time.Duration
	}{
		"deny/undefined-point": {Network, nil, 0},
		"deny/eval-error": {Commands, map[string]string{"c.rego": `package mcp.commands
allow if to_number(input.argv[0]) > 0
`}, 0},
		"deny/non-boolean-allow-and-no-decision": {Filesystem, map[string]string{"f.rego": `package mcp.filesystem
allow := "yes"
`}, 0},
		"deny/timeout": {Network, map[string]string{"n.rego": `package mcp.network
allow if count([x | some x in numbers.range(1, 50000000)]) > 0
`}, 20 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(tc.modules)
			cfg.Timeout = tc.timeout
			e, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(t.Context(), tc.point, input(t, map[string]any{"argv": []any{"x"}}))
			if d.Allow {
				t.Fatalf("allowed: %+v", d)
			}
			if !errors.Is(err, ErrEval) {
				t.Errorf("err = %v, want ErrEval", err)
			}
			if len(d.Reasons) == 0 {
				t.Error("a deny must carry a reason")
			}
		})
	}
	t.Run("deny/unknown-point", func(t *testing.T) {
		e, err := New(t.Context(), testConfig(nil))
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.Decide(t.Context(), Point("nope"), ast.NewObject())
		if d.Allow || !errors.Is(err, ErrUnknownPoint) {
			t.Errorf("got %+v, %v", d, err)
		}
	})
}

func TestCompileErrors(t *testing.T) {
	for name, mod := range map[string]string{
		"fail/syntax":          "package mcp.tools\ndeny contains if {",
		"fail/outside-mcp":     "package system.log\nmask := []",
		"fail/shadows-policy":  "package mcp.policy\ntools := {}",
		"fail/unknown-builtin": "package mcp.tools\ndeny contains x if x := no_such_builtin(1)",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(t.Context(), testConfig(map[string]string{"user.rego": mod}))
			if !errors.Is(err, ErrCompile) {
				t.Errorf("err = %v, want ErrCompile", err)
			}
		})
	}
}

func TestCapabilitiesRestrictBuiltins(t *testing.T) {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Name == "http.send" })
	cfg := testConfig(map[string]string{"user.rego": `package mcp.tools
deny contains "x" if http.send({"method": "get", "url": "http://127.0.0.1:1"}).status_code == 200
`})
	cfg.Capabilities = caps
	if _, err := New(t.Context(), cfg); !errors.Is(err, ErrCompile) {
		t.Errorf("http.send compiled despite the capabilities: %v", err)
	}
}

func TestReloadKeepsOldSnapshotOnError(t *testing.T) {
	e, err := New(t.Context(), testConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	bad := testConfig(map[string]string{"bad.rego": "package mcp.tools\n!!!"})
	if err := e.Reload(t.Context(), bad); !errors.Is(err, ErrCompile) {
		t.Fatalf("reload err = %v", err)
	}
	d, err := e.Decide(t.Context(), Tools, input(t, map[string]any{"tool": "ok"}))
	if err != nil || !d.Allow {
		t.Fatalf("old snapshot lost: %+v %v", d, err)
	}
	stricter := testConfig(nil)
	stricter.Data["tools"].(map[string]any)["denied"] = []any{"*"}
	if err := e.Reload(t.Context(), stricter); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Decide(t.Context(), Tools, input(t, map[string]any{"tool": "ok"})); d.Allow {
		t.Fatal("new snapshot not in effect")
	}
}
