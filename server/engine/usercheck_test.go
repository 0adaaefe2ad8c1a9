package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/engine"
)

// userConfig is the binary's configuration with the given user modules.
func userConfig(t testing.TB, data map[string]any, user map[string]string) engine.Config {
	t.Helper()
	cfg := builtinConfig(t, data, nil)
	cfg.UserModules = user
	return cfg
}

// TestUserModuleCheck tries every way Rego v1 defines a rule against the
// checker: allow/... cases build, deny/... cases fail naming file, line
// and rule.
func TestUserModuleCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  []string // substrings of the error; nil means the build succeeds
	}{
		"allow/deny-contains-if": {files: map[string]string{"u.rego": `package mcp.tools

deny contains "no" if input.tool == "x"
`}},
		"allow/deny-contains-body": {files: map[string]string{"u.rego": `package mcp.filesystem

deny contains msg if {
	endswith(input.path, ".bak")
	msg := "no backups"
}
`}},
		"allow/deny-contains-ground": {files: map[string]string{"u.rego": `package mcp.network

deny contains "never port 8080" if input.port == 8080
`}},
		"allow/helper-assign": {files: map[string]string{"u.rego": `package mcp.tools

trusted := {"ci"}

deny contains "untrusted" if not input.client.name in trusted
`}},
		"allow/helper-unify": {files: map[string]string{"u.rego": `package mcp.tools

limit = 3
`}},
		"allow/helper-if-else": {files: map[string]string{"u.rego": `package mcp.commands

risk := "high" if input.name == "git"
else := "low"
`}},
		"allow/helper-function": {files: map[string]string{"u.rego": `package mcp.filesystem

is_backup(p) if endswith(p, ".bak")

deny contains "backup" if is_backup(input.path)
`}},
		"allow/helper-ref-head": {files: map[string]string{"u.rego": `package mcp.tools

my.limits.web := 3

my.by_tool[t] := 1 if t := input.tool
`}},
		"allow/helper-default": {files: map[string]string{"u.rego": `package mcp.tools

default strict := false

strict if input.client.name == "prod"
`}},
		"allow/helper-contains": {files: map[string]string{"u.rego": `package mcp.tools

flagged contains input.tool if startswith(input.tool, "web")
`}},
		"allow/own-package": {files: map[string]string{"u.rego": `package mcp.custom

allow := true

decision := {"allow": true}

count(x) := 0
`}},
		"allow/nested-helper-package": {files: map[string]string{"u.rego": `package mcp.tools.lib

allow := true
`}},
		"allow/audit-mask": {files: map[string]string{"u.rego": `package mcp.audit

mask contains "arguments.token"

deny contains "x" if false
`}},
		"allow/multi-file": {files: map[string]string{
			"a.rego": "package mcp.tools\n\nbad_clients := {\"x\"}\n",
			"b.rego": "package mcp.tools\n\ndeny contains \"bad client\" if input.client.name in bad_clients\n",
		}},

		"deny/allow-if": {files: map[string]string{"widen.rego": `package mcp.tools

allow if input.client.name == "trusted-ci"
`}, want: []string{"widen.rego:3: rule allow", "data.mcp.tools.allow is defined by the built-in policy"}},
		"deny/allow-assign": {files: map[string]string{"w.rego": "package mcp.filesystem\n\nallow := true\n"},
			want: []string{"w.rego:3: rule allow"}},
		"deny/allow-unify": {files: map[string]string{"w.rego": "package mcp.network\n\nallow = true\n"},
			want: []string{"w.rego:3: rule allow"}},
		"deny/allow-else": {files: map[string]string{"w.rego": "package mcp.commands\n\nallow := false if input.name == \"x\"\nelse := true\n"},
			want: []string{"w.rego:3: rule allow"}},
		"deny/default-allow": {files: map[string]string{"w.rego": "package mcp.tools\n\ndefault allow := true\n"},
			want: []string{"w.rego:3: rule default allow"}},
		"deny/allow-function": {files: map[string]string{"w.rego": "package mcp.tools\n\nallow(x) := true\n"},
			want: []string{"w.rego:3: rule allow(...)"}},
		"deny/permitted": {files: map[string]string{"w.rego": "package mcp.filesystem\n\npermitted if startswith(input.path, \"/etc\")\n"},
			want: []string{"w.rego:3: rule permitted"}},
		"deny/reasons": {files: map[string]string{"w.rego": "package mcp.tools\n\nreasons contains \"x\"\n"},
			want: []string{"w.rego:3: rule reasons"}},
		"deny/decision": {files: map[string]string{"w.rego": "package mcp.tools\n\ndecision := {\"allow\": true, \"reasons\": []}\n"},
			want: []string{"w.rego:3: rule decision"}},
		"deny/builtin-helper-name": {files: map[string]string{"w.rego": "package mcp.network\n\nendpoint_port if true\n"},
			want: []string{"w.rego:3: rule endpoint_port", "defined by the built-in policy"}},
		"deny/builtin-policy-name": {files: map[string]string{"w.rego": "package mcp.filesystem\n\npolicy := {\"allowed_paths\": [\"/**\"], \"denied_paths\": []}\n"},
			want: []string{"w.rego:3: rule policy"}},
		"deny/builtin-name-ref-head": {files: map[string]string{"w.rego": "package mcp.commands\n\nnames.extra := \"x\"\n"},
			want: []string{"w.rego:3: rule names.extra"}},
		"deny/builtin-default": {files: map[string]string{"w.rego": "package mcp.filesystem\n\ndefault absolute := true\n"},
			want: []string{"w.rego:3: rule default absolute"}},
		"deny/deny-assign-set": {files: map[string]string{"w.rego": "package mcp.tools\n\ndeny := set()\n"},
			want: []string{"w.rego:3: rule deny", "deny contains reason if"}},
		"deny/deny-object-ref": {files: map[string]string{"w.rego": "package mcp.tools\n\ndeny[x] := true if x := input.tool\n"},
			want: []string{"w.rego:3: rule deny[x]"}},
		"deny/deny-default": {files: map[string]string{"w.rego": "package mcp.tools\n\ndefault deny := set()\n"},
			want: []string{"w.rego:3: rule default deny", "no default"}},
		"deny/deny-function": {files: map[string]string{"w.rego": "package mcp.tools\n\ndeny(x) := true\n"},
			want: []string{"w.rego:3: rule deny(...)"}},
		"deny/deny-nested-ref": {files: map[string]string{"w.rego": "package mcp.tools\n\ndeny.extra contains \"x\"\n"},
			want: []string{"w.rego:3: rule deny.extra"}},
		"deny/mask-outside-audit": {files: map[string]string{"w.rego": "package mcp.audit\n\nmask := {}\n"},
			want: []string{"w.rego:3: rule mask"}},
		"deny/ref-head-from-mcp": {files: map[string]string{"w.rego": "package mcp\n\nfilesystem.allow := true\n"},
			want: []string{"w.rego:3: rule filesystem.allow", "reaches into the decision package data.mcp.filesystem from package data.mcp"}},
		"deny/ref-head-deny-from-mcp": {files: map[string]string{"w.rego": "package mcp\n\ntools.deny contains \"x\"\n"},
			want: []string{"w.rego:3: rule tools.deny", "reaches into"}},
		"deny/ref-head-variable": {files: map[string]string{"w.rego": "package mcp\n\ntools[x] := true if x := \"allow\"\n"},
			want: []string{"w.rego:3: rule tools[x]", "reaches into"}},
		"deny/ref-head-whole-package": {files: map[string]string{"w.rego": "package mcp\n\ncommands := {\"allow\": true}\n"},
			want: []string{"w.rego:3: rule commands"}},
		"deny/nested-package-shadows": {files: map[string]string{"w.rego": "package mcp.tools.allow\n\nx := 1\n"},
			want: []string{"w.rego:3: rule x", "data.mcp.tools.allow is defined by the built-in policy"}},
		"deny/nested-package-deny": {files: map[string]string{"w.rego": "package mcp.tools.deny\n\nx := \"reason\"\n"},
			want: []string{"w.rego:3: rule x", "shadows data.mcp.tools.deny"}},
		"deny/policy-data-ref-head": {files: map[string]string{"w.rego": "package mcp\n\npolicy.tools.allow_all := true\n"},
			want: []string{"w.rego:3: rule policy.tools.allow_all", "policy data"}},
		"deny/shadow-builtin-function": {files: map[string]string{"w.rego": "package mcp.tools\n\nglob.match(a, b, c) := true\n"},
			want: []string{"w.rego:3: rule glob.match(...)", "shadows the built-in function glob."}},
		"deny/shadow-builtin-count": {files: map[string]string{"w.rego": "package mcp.filesystem\n\ncount(x) := 0\n"},
			want: []string{"w.rego:3: rule count(...)", "built-in function count"}},
		"deny/multi-file-reports-each": {files: map[string]string{
			"a.rego": "package mcp.tools\n\nallow if true\n",
			"b.rego": "package mcp\n\nnetwork.allow := true\n",
		}, want: []string{"a.rego:3: rule allow", "b.rego:3: rule network.allow"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := engine.New(t.Context(), userConfig(t, map[string]any{}, tc.files))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("build failed: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("build succeeded; want the user module refused")
			}
			if !errors.Is(err, engine.ErrUserModule) {
				t.Errorf("error does not wrap ErrUserModule: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// TestUserModuleTightens shows a legitimate user module denying in a real
// decision, and `with` in a user module changing only the user's own
// expression: the built-in allow still decides on the real input and data.
func TestUserModuleTightens(t *testing.T) {
	data := map[string]any{
		"tools":      map[string]any{"allowed": []any{"search_*"}, "allow_all": false, "denied": []any{"web_*"}},
		"filesystem": map[string]any{"allowed_paths": []any{"/ws/**"}, "denied_paths": []any{}},
	}
	user := map[string]string{"tighten.rego": `package mcp.tools

deny contains "no client named mallory" if input.client.name == "mallory"

# with rewrites input and data only inside this expression.
widened if data.mcp.tools.permitted with data.mcp.policy.tools.allow_all as true

seen_as_search if data.mcp.tools.permitted with input.tool as "search_x"
`, "files.rego": `package mcp.filesystem

deny contains "no backups" if endswith(input.path, ".bak")

opens_etc if data.mcp.filesystem.permitted with input.path as "/etc/passwd" with data.mcp.policy.filesystem.allowed_paths as ["/**"]
`}
	e, err := engine.New(t.Context(), userConfig(t, data, user))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		point engine.Point
		in    map[string]any
		allow bool
		want  string
	}{
		"allow/search":              {engine.Tools, map[string]any{"tool": "search_tools", "registered": true, "client": map[string]any{"name": "ok"}}, true, ""},
		"deny/user-rule":            {engine.Tools, map[string]any{"tool": "search_tools", "registered": true, "client": map[string]any{"name": "mallory"}}, false, "no client named mallory"},
		"deny/with-does-not-widen":  {engine.Tools, map[string]any{"tool": "add_bug", "registered": true, "client": map[string]any{"name": "ok"}}, false, `tool "add_bug" is not in tools.allowed`},
		"deny/builtin-denied-kept":  {engine.Tools, map[string]any{"tool": "web_search", "registered": true, "client": map[string]any{"name": "ok"}}, false, "tools.denied"},
		"allow/file":                {engine.Filesystem, map[string]any{"path": "/ws/a.txt", "operation": "read"}, true, ""},
		"deny/file-user-rule":       {engine.Filesystem, map[string]any{"path": "/ws/a.bak", "operation": "read"}, false, "no backups"},
		"deny/file-with-not-widens": {engine.Filesystem, map[string]any{"path": "/etc/passwd", "operation": "read"}, false, "not under filesystem.allowed_paths"},
	} {
		t.Run(name, func(t *testing.T) {
			in, err := ast.InterfaceToValue(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(t.Context(), tc.point, in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow {
				t.Fatalf("allow = %v, want %v (%q)", d.Allow, tc.allow, d.Reasons)
			}
			if tc.want != "" && !strings.Contains(strings.Join(d.Reasons, "\n"), tc.want) {
				t.Errorf("reasons %q do not mention %q", d.Reasons, tc.want)
			}
		})
	}
}

// TestUserModuleNameClash refuses a user module that reuses a built-in
// module's file name.
func TestUserModuleNameClash(t *testing.T) {
	cfg := userConfig(t, map[string]any{}, map[string]string{"rego/mcp/tools/tools.rego": "package mcp.tools\n"})
	if _, err := engine.New(t.Context(), cfg); err == nil {
		t.Fatal("a user module replaced a built-in one")
	}
}

// TestExampleModulesTighten: the example user modules shipped with the
// project load as user modules.
func TestExampleModulesTighten(t *testing.T) {
	files, err := filepath.Glob("../../examples/rego/*.rego")
	if err != nil {
		t.Fatal(err)
	}
	user := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.rego") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		user[f] = string(src)
	}
	if len(user) == 0 {
		t.Fatal("no example modules found")
	}
	if _, err := engine.New(t.Context(), userConfig(t, map[string]any{}, user)); err != nil {
		t.Fatalf("example modules refused: %v", err)
	}
}

// TestUserModuleCannotCaptureVariables: a variable the built-in rules
// bind is off limits as a user rule name, since a rule of that name would
// be what the variable refers to.
func TestUserModuleCannotCaptureVariables(t *testing.T) {
	for _, name := range []string{"pattern", "reason", "name"} {
		mod := map[string]string{"w.rego": "package mcp.filesystem\n\n" + name + " := \"x\"\n"}
		if name == "name" {
			mod = map[string]string{"w.rego": "package mcp.commands\n\n" + name + " := \"x\"\n"}
		}
		_, err := engine.New(t.Context(), userConfig(t, map[string]any{}, mod))
		if !errors.Is(err, engine.ErrUserModule) || !strings.Contains(err.Error(), "w.rego:3: rule "+name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// BenchmarkBuildWithUserModules is a snapshot build with the example user
// modules, checker included; compare BenchmarkBuildBuiltinOnly.
func BenchmarkBuildWithUserModules(b *testing.B) {
	user := map[string]string{}
	files, _ := filepath.Glob("../../examples/rego/*.rego")
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.rego") {
			src, _ := os.ReadFile(f)
			user[f] = string(src)
		}
	}
	cfg := userConfig(b, map[string]any{}, user)
	for b.Loop() {
		if _, err := engine.New(b.Context(), cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildBuiltinOnly(b *testing.B) {
	cfg := userConfig(b, map[string]any{}, nil)
	for b.Loop() {
		if _, err := engine.New(b.Context(), cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzUserModuleTightens checks the property the checker exists for: a
// user module that builds never allows a request the built-in policy
// alone denies.
func FuzzUserModuleTightens(f *testing.F) {
	for _, seed := range []string{
		"package mcp.tools\n\ndeny contains \"x\" if input.tool == \"search_a\"\n",
		"package mcp.tools\n\nallow if input.client.name == \"trusted-ci\"\n",
		"package mcp.filesystem\n\nallow if startswith(input.path, \"/\")\n",
		"package mcp\n\nfilesystem.allow := true\n",
		"package mcp.tools\n\nglob.match(a, b, c) := true\n",
		"package mcp.tools\n\nh if data.mcp.tools.permitted with data.mcp.policy.tools.allow_all as true\n",
		"package mcp.filesystem\n\npolicy := {\"allowed_paths\": [\"/**\"], \"denied_paths\": []}\n",
		"package mcp.custom\n\nallow := true\n",
	} {
		f.Add(seed)
	}
	data := map[string]any{
		"tools":      map[string]any{"allowed": []any{"search_*"}, "allow_all": false, "denied": []any{"search_bad"}},
		"filesystem": map[string]any{"allowed_paths": []any{"/ws/**"}, "denied_paths": []any{"**/.env"}},
	}
	base, err := engine.New(f.Context(), userConfig(f, data, nil))
	if err != nil {
		f.Fatal(err)
	}
	inputs := []struct {
		point engine.Point
		in    map[string]any
	}{
		{engine.Tools, map[string]any{"tool": "add_bug", "registered": true, "client": map[string]any{"name": "trusted-ci"}}},
		{engine.Tools, map[string]any{"tool": "search_bad", "registered": true, "client": map[string]any{"name": "trusted-ci"}}},
		{engine.Tools, map[string]any{"tool": "search_x", "registered": false}},
		{engine.Filesystem, map[string]any{"path": "/etc/passwd", "operation": "read"}},
		{engine.Filesystem, map[string]any{"path": "/ws/.env", "operation": "read"}},
		{engine.Filesystem, map[string]any{"path": "/ws/a", "operation": "chmod"}},
	}
	vals := make([]ast.Value, len(inputs))
	for i, in := range inputs {
		if vals[i], err = ast.InterfaceToValue(in.in); err != nil {
			f.Fatal(err)
		}
		if d, _ := base.Decide(f.Context(), in.point, vals[i]); d.Allow {
			f.Fatalf("input %d is allowed by the built-in policy; the property needs denials", i)
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := engine.New(t.Context(), userConfig(t, data, map[string]string{"fuzz.rego": src}))
		if err != nil {
			return
		}
		for i, in := range inputs {
			if d, _ := e.Decide(t.Context(), in.point, vals[i]); d.Allow {
				t.Fatalf("user module widened %s for %v:\n%s", in.point, in.in, src)
			}
		}
	})
}

// TestUserModuleDataHead: a head that names data from elsewhere is refused
// (OPA's own check: rules must not shadow data).
func TestUserModuleDataHead(t *testing.T) {
	_, err := engine.New(t.Context(), userConfig(t, map[string]any{}, map[string]string{"w.rego": "package mcp.x\n\ndata.mcp.tools.allow := true\n"}))
	if err == nil || !strings.Contains(err.Error(), "w.rego:3") {
		t.Fatalf("err = %v", err)
	}
}
