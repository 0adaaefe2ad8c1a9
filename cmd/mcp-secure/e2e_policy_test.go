package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// policyEnv is an env whose policy file is exactly body plus an audit
// section: the filesystem section is the test's own.
func policyEnv(t *testing.T, body string) *env {
	t.Helper()
	e := newEnv(t, "")
	e.write(t, "policy.yaml", fmt.Sprintf("version: \"1.0\"\naudit:\n  log_file: %q\n%s", e.audit, body))
	return e
}

// runBinary runs the binary with args (serve gets an empty stdin, so a
// server that starts ends at EOF) and returns its exit code, stdout and
// stderr; a run over 30 seconds fails the test.
func runBinary(t *testing.T, e *env, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"), "XDG_DATA_HOME="+filepath.Join(e.dir, "data"))
	cmd.Env = append(cmd.Env, e.vars...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish within 30s", args)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// refused asserts that both serve and policy check refuse the policy with
// exit code 2 and every wanted substring on stderr.
func refused(t *testing.T, e *env, want ...string) {
	t.Helper()
	for _, args := range [][]string{{"serve", "--policy", e.policy}, {"policy", "check", "--policy", e.policy}} {
		code, _, stderr := runBinary(t, e, args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2; stderr:\n%s", args[0], code, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr does not contain %q:\n%s", args[0], w, stderr)
			}
		}
	}
}

// TestE2EPolicyUserModulesCannotWiden: the three widening modules of the
// issue are refused at start-up with file, line and rule; none of them
// gets to serve a call.
func TestE2EPolicyUserModulesCannotWiden(t *testing.T) {
	for name, tc := range map[string]struct {
		module string
		want   string
	}{
		"deny/tools-allow-for-client": {
			module: "package mcp.tools\n\nallow if input.client.name == \"trusted-ci\"\n",
			want:   "widen.rego:3: rule allow: data.mcp.tools.allow is defined by the built-in policy",
		},
		"deny/filesystem-allow-prefix": {
			module: "package mcp.filesystem\n\nallow if startswith(input.path, \"/\")\n",
			want:   "widen.rego:3: rule allow: data.mcp.filesystem.allow is defined by the built-in policy",
		},
		"deny/ref-head-from-mcp": {
			module: "package mcp\n\nfilesystem.allow := true\n",
			want:   "widen.rego:3: rule filesystem.allow: reaches into the decision package data.mcp.filesystem from package data.mcp",
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "rego:\n  modules: [widen.rego]\ntools:\n  denied: [fixture_read]\n")
			mod := e.write(t, "widen.rego", tc.module)
			refused(t, e, mod+":3", tc.want, "a user module may only tighten the policy")
		})
	}
}

// TestE2EPolicyUserModuleTightens: a module that only adds to deny loads
// and denies, with its reason in the result and the audit log.
func TestE2EPolicyUserModuleTightens(t *testing.T) {
	e := newEnv(t, "rego:\n  modules: [tighten.rego]\n")
	e.write(t, "tighten.rego", `package mcp.filesystem

private_names := {"private.txt"}

deny contains "private files stay private" if {
	some name in private_names
	endswith(input.path, concat("", ["/", name]))
}
`)
	for _, f := range []string{"private.txt", "open.txt"} {
		if err := os.WriteFile(filepath.Join(e.workspace, f), []byte("content of "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/open.txt"})
	if res.IsError || text(res) != "content of open.txt" {
		t.Fatalf("open.txt: %v %q", res.IsError, text(res))
	}
	res = call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/private.txt"})
	if !res.IsError || !strings.Contains(text(res), "private files stay private") || strings.Contains(text(res), "content of") {
		t.Fatalf("private.txt: %v %q", res.IsError, text(res))
	}
	rec := e.findRecord(t, map[string]any{"kind": "filesystem", "tool": "fixture_read", "result": "deny"})
	if !strings.Contains(fmt.Sprint(rec["reasons"]), "private files stay private") {
		t.Errorf("audit record: %v", rec)
	}
}

// TestE2EPolicyPluginSettings: plugin settings are as strict as the rest
// of the policy, in serve and in policy check alike.
func TestE2EPolicyPluginSettings(t *testing.T) {
	for name, tc := range map[string]struct {
		plugins string
		want    []string
	}{
		"deny/bad-synchronous": {
			plugins: "plugins:\n  bugtracker:\n    synchronous: sometimes\n",
			want:    []string{"policy.yaml:8: plugins.bugtracker.synchronous:", `"sometimes" is not normal or full`},
		},
		"deny/typo-key": {
			plugins: "plugins:\n  bugtracker:\n    databse: /tmp/other.db\n",
			want:    []string{"policy.yaml:8: plugins.bugtracker.databse:", "did you mean database?"},
		},
		"deny/typo-plugin": {
			plugins: "plugins:\n  bugtrackr:\n    database: /tmp/other.db\n",
			want:    []string{"policy.yaml:7: plugins.bugtrackr:", `unknown plugin "bugtrackr"; did you mean bugtracker?`},
		},
		"deny/plugin-without-settings": {
			plugins: "plugins:\n  discovery:\n    depth: \"3\"\n",
			want:    []string{"policy.yaml:8: plugins.discovery.depth:", "it takes no settings"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := policyEnv(t, "filesystem:\n  allowed_paths: [/nonexistent/**]\n"+tc.plugins)
			refused(t, e, append([]string{e.policy}, tc.want...)...)
		})
	}
	t.Run("allow/good-settings", func(t *testing.T) {
		e := policyEnv(t, "filesystem:\n  allowed_paths: [/nonexistent/**]\nplugins:\n  bugtracker:\n    synchronous: full\n    database: /nonexistent/bugs.db\n")
		code, stdout, stderr := runBinary(t, e, "policy", "check", "--policy", e.policy)
		if code != 0 || !strings.Contains(stdout, ": ok (") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
}

// TestE2EPolicyCheckReports: defaulted sections and patterns that match
// no tool are reported by policy check (stdout, exit 0) and logged by
// serve at start-up.
func TestE2EPolicyCheckReports(t *testing.T) {
	e := policyEnv(t, "tools:\n  denied:\n    - \"LIST_*\"\n")
	code, stdout, stderr := runBinary(t, e, "policy", "check", "--policy", e.policy)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, w := range []string{
		"default: network: no connections and no name resolution",
		"default: filesystem: no files",
		"default: commands: no commands",
		`warning: ` + e.policy + `:6: tools.denied[0]: "LIST_*" matches no tool; did you mean list_*?`,
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("policy check output lacks %q:\n%s", w, stdout)
		}
	}
	if strings.Contains(stdout, "default: tools") || strings.Contains(stdout, "default: audit") {
		t.Errorf("reports a present section as defaulted:\n%s", stdout)
	}
	code, _, stderr = runBinary(t, e, "serve", "--policy", e.policy)
	if code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, stderr)
	}
	for _, w := range []string{`LIST_*`, `matches no tool; did you mean list_*?`, "section=\"commands: no commands\""} {
		if !strings.Contains(stderr, w) {
			t.Errorf("serve log lacks %q:\n%s", w, stderr)
		}
	}
}

// TestE2EPolicyLeftOutCommandsRunNothing: a policy without a commands
// section runs no command (it used to run everything not blocked).
func TestE2EPolicyLeftOutCommandsRunNothing(t *testing.T) {
	ws := t.TempDir()
	e := policyEnv(t, fmt.Sprintf("filesystem:\n  allowed_paths: [\"%s/**\"]\ntools:\n  timeout: 10\n", ws))
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "fixture_run", map[string]any{"argv": []string{"echo", "ran-anyway"}, "dir": ws})
	if !res.IsError || strings.Contains(text(res), "ran-anyway") {
		t.Fatalf("echo ran without a commands section: %v %q", res.IsError, text(res))
	}
	e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run", "result": "deny"})
}

// TestE2EPolicyPathPatterns drives the path traps through fixture_read on
// real files: relative patterns refuse to load, a trailing slash covers
// what is below the directory, and a home or variable with glob
// characters means that very directory.
func TestE2EPolicyPathPatterns(t *testing.T) {
	t.Run("deny/relative-denied-path", func(t *testing.T) {
		e := policyEnv(t, "filesystem:\n  allowed_paths: [/nonexistent/**]\n  denied_paths:\n    - \"**/.ssh/**\"\n    - .env\n")
		refused(t, e, e.policy+":8: filesystem.denied_paths[1]:", `".env" is relative`, "**/.env")
	})

	t.Run("deny/trailing-slash-covers-below", func(t *testing.T) {
		ws := t.TempDir()
		e := policyEnv(t, fmt.Sprintf("filesystem:\n  allowed_paths: [\"%s/**\"]\n  denied_paths: [\"**/secrets/\", \"%s/private/\"]\n", ws, ws))
		mustWrite(t, filepath.Join(ws, "secrets", "key.txt"), "secret-key-77")
		mustWrite(t, filepath.Join(ws, "private", "deep", "p.txt"), "private-77")
		mustWrite(t, filepath.Join(ws, "public.txt"), "public")
		cs := e.connect(t, "2025-11-25")
		readExpect(t, e, cs, filepath.Join(ws, "public.txt"), "public", "")
		readExpect(t, e, cs, filepath.Join(ws, "secrets", "key.txt"), "", `filesystem.denied_paths pattern "**/secrets/**"`)
		readExpect(t, e, cs, filepath.Join(ws, "private", "deep", "p.txt"), "", "filesystem.denied_paths pattern")
	})

	t.Run("allow/home-with-glob-characters", func(t *testing.T) {
		base := t.TempDir()
		home := filepath.Join(base, "proj[1]")
		mustWrite(t, filepath.Join(home, "ws", "a.txt"), "in proj[1]")
		mustWrite(t, filepath.Join(base, "proj1", "ws", "a.txt"), "in proj1")
		e := policyEnv(t, "filesystem:\n  allowed_paths: [\"~/ws/**\"]\n  denied_paths: [\"${SECRET_DIR}/**\"]\n")
		e.vars = append(e.vars, "HOME="+home, "SECRET_DIR="+filepath.Join(home, "ws", "s[e]cret"))
		mustWrite(t, filepath.Join(home, "ws", "s[e]cret", "k.txt"), "hidden")
		mustWrite(t, filepath.Join(home, "ws", "secret", "k.txt"), "not hidden")
		cs := e.connect(t, "2025-11-25")
		readExpect(t, e, cs, filepath.Join(home, "ws", "a.txt"), "in proj[1]", "")
		readExpect(t, e, cs, filepath.Join(base, "proj1", "ws", "a.txt"), "", "is not under filesystem.allowed_paths")
		readExpect(t, e, cs, filepath.Join(home, "ws", "s[e]cret", "k.txt"), "", "filesystem.denied_paths pattern")
		readExpect(t, e, cs, filepath.Join(home, "ws", "secret", "k.txt"), "not hidden", "")
	})
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readExpect calls fixture_read on path: with wantDeny empty it must
// return want, else be denied with wantDeny in the reason; either way the
// filesystem decision on that path is in the audit log.
func readExpect(t *testing.T, e *env, cs *mcp.ClientSession, path, want, wantDeny string) {
	t.Helper()
	res := call(t, cs, "fixture_read", map[string]any{"path": path})
	result := "allow"
	if wantDeny == "" {
		if res.IsError || text(res) != want {
			t.Errorf("read %s: isError=%v %q, want %q", path, res.IsError, text(res), want)
		}
	} else {
		result = "deny"
		if !res.IsError || !strings.Contains(text(res), wantDeny) {
			t.Errorf("read %s: isError=%v %q, want a denial with %q", path, res.IsError, text(res), wantDeny)
		}
	}
	for _, r := range e.records(t) {
		if in, _ := r["input"].(map[string]any); r["kind"] == "filesystem" && in["path"] == path && r["result"] == result {
			return
		}
	}
	t.Errorf("no filesystem audit record %s for %s", result, path)
}
