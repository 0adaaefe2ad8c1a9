//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An upstream server whose code lies below an allowed path (its
// sandbox.read) reads and runs it, while no other child may change it:
// a tool that rewrote it would run its own code with the server's
// variables at the server's next start.
func TestE2EUpstreamCodeKeptFromTools(t *testing.T) {
	modules := nodeModules(t)
	e := newEnv(t, extPolicy("plugins/fx"))
	extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
	code := filepath.Join(e.workspace, "srv")
	if err := os.MkdirAll(code, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../examples/plugins/upstream-ts/server.mjs")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(code, "server.mjs")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(code, "node_modules")); err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(e.policy)
	if err != nil {
		t.Fatal(err)
	}
	e.write(t, "policy.yaml", string(policy)+fmt.Sprintf("servers:\n  demo:\n    command: node\n    args: [%q]\n    sandbox:\n      read: [%q, %q]\n", script, code, modules))
	if err := os.WriteFile(filepath.Join(e.workspace, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(e.workspace, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "")
	if res := call(t, cs, "demo__echo", map[string]any{"text": "runs"}); res.IsError || !strings.Contains(text(res), "runs") {
		t.Fatalf("the upstream whose code is kept from tools: %q", text(res))
	}
	res := call(t, cs, "fx_write", map[string]any{"path": script})
	wantError(t, res, "write failed", "permission denied")
	if data, _ := os.ReadFile(script); !bytes.Equal(data, src) {
		t.Fatal("a tool rewrote the upstream server's code")
	}
	// Beside it, the rest of the allowed path stays writable (Landlock
	// only grants: the allowed path is granted entry by entry, so a
	// child cannot create a new entry in the directories above the code).
	for _, p := range []string{filepath.Join(e.workspace, "notes.txt"), filepath.Join(e.workspace, "sub", "new.txt")} {
		if res := call(t, cs, "fx_write", map[string]any{"path": p}); res.IsError {
			t.Errorf("a write beside the upstream's code, %s: %q", p, text(res))
		}
	}
	out, err := exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
	if err != nil || strings.Contains(string(out), "cannot be kept from tools") {
		t.Errorf("policy check: %v\n%s", err, out)
	}
	// Code read from a directory that holds the allowed path cannot be
	// kept from tools without keeping the allowed path from them too:
	// policy check says so.
	e.write(t, "policy.yaml", string(policy)+fmt.Sprintf("servers:\n  demo:\n    command: node\n    args: [%q]\n    sandbox:\n      read: [%q, %q]\n", script, e.dir, modules))
	out, _ = exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
	if !strings.Contains(string(out), "servers.demo.sandbox.read path "+e.dir+" holds paths tools may use") {
		t.Errorf("policy check of code above the allowed path:\n%s", out)
	}
}
