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
	"time"
)

// An upstream server whose code lies below an allowed path (its
// sandbox.read, the program its command runs, what symlinks in its code
// lead to) reads and runs it, while no other child may change it: a tool
// that rewrote it would run its own code with the server's variables at
// the server's next start.
func TestE2EUpstreamCodeKeptFromTools(t *testing.T) {
	modules := nodeModules(t)
	e := newEnv(t, extPolicy("plugins/fx"))
	extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
	ws := e.workspace
	mkdir := func(dirs ...string) {
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	put := func(path string, data []byte, mode os.FileMode) {
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	code, shared, tools := filepath.Join(ws, "srv"), filepath.Join(ws, "shared"), filepath.Join(ws, "tools")
	mkdir(code, shared, tools, filepath.Join(ws, "sub"), filepath.Join(ws, "wrapped"))
	src, err := os.ReadFile("../../examples/plugins/upstream-ts/server.mjs")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(code, "server.mjs")
	put(script, src, 0o644)
	if err := os.Symlink(modules, filepath.Join(code, "node_modules")); err != nil {
		t.Fatal(err)
	}
	// A link from the code to a directory elsewhere below the allowed path.
	put(filepath.Join(shared, "lib.mjs"), []byte("export const x = 1;\n"), 0o644)
	if err := os.Symlink(shared, filepath.Join(code, "lib")); err != nil {
		t.Fatal(err)
	}
	// A command whose #! interpreter lies below the allowed path.
	interp := filepath.Join(tools, "interp")
	truth, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	put(interp, truth, 0o755)
	wrapper := filepath.Join(ws, "wrapped", "run")
	put(wrapper, []byte("#!"+interp+"\n"), 0o755)
	put(filepath.Join(ws, "notes.txt"), nil, 0o644)
	policy, err := os.ReadFile(e.policy)
	if err != nil {
		t.Fatal(err)
	}
	// demo and twin share their code; wrapped only has to be listed.
	e.write(t, "policy.yaml", string(policy)+fmt.Sprintf(`servers:
  demo:
    command: node
    args: [%[1]q]
    sandbox:
      read: [%[2]q, %[3]q]
  twin:
    command: node
    args: [%[1]q]
    sandbox:
      read: [%[2]q, %[3]q]
  wrapped:
    command: %[4]q
`, script, code, modules, wrapper))
	cs := e.connect(t, "")
	for _, tool := range []string{"demo__echo", "twin__echo"} {
		if res := call(t, cs, tool, map[string]any{"text": "runs"}); res.IsError || !strings.Contains(text(res), "runs") {
			t.Fatalf("%s, an upstream whose code is kept from tools: %q", tool, text(res))
		}
	}
	for _, path := range []string{script, filepath.Join(code, "lib", "lib.mjs"), filepath.Join(shared, "lib.mjs"), wrapper, interp} {
		before, _ := os.ReadFile(path)
		res := call(t, cs, "fx_write", map[string]any{"path": path})
		// While the wrapped server runs (it exits at once and is started
		// again), its interpreter cannot be opened for writing by anyone
		// (ETXTBSY, which the kernel checks before Landlock): ask again.
		for i := 0; i < 100 && strings.Contains(text(res), "text file busy"); i++ {
			time.Sleep(20 * time.Millisecond)
			res = call(t, cs, "fx_write", map[string]any{"path": path})
		}
		wantError(t, res, "write failed", "permission denied")
		if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
			t.Fatalf("a tool rewrote the upstream servers' code: %s", path)
		}
	}
	// Beside it, the rest of the allowed path stays writable (Landlock
	// only grants: the allowed path is granted entry by entry, so a
	// child cannot create a new entry in the directories above the code).
	for _, p := range []string{filepath.Join(ws, "notes.txt"), filepath.Join(ws, "sub", "new.txt")} {
		if res := call(t, cs, "fx_write", map[string]any{"path": p}); res.IsError {
			t.Errorf("a write beside the upstream's code, %s: %q", p, text(res))
		}
	}
	out, err := exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
	if err != nil || strings.Contains(string(out), "cannot be kept from tools") || strings.Contains(string(out), "tools may change it") {
		t.Errorf("policy check: %v\n%s", err, out)
	}
	// Code read from a directory that holds the allowed path cannot be
	// kept from tools without keeping the allowed path from them too,
	// and then the script its args name is not kept either: policy check
	// says so.
	e.write(t, "policy.yaml", string(policy)+fmt.Sprintf("servers:\n  demo:\n    command: node\n    args: [%q]\n    sandbox:\n      read: [%q, %q]\n", script, e.dir, modules))
	out, _ = exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
	for _, want := range []string{
		"servers.demo.sandbox.read path " + e.dir + " holds paths tools may use",
		"servers.demo.args names " + script + ", below an allowed path: tools may change it",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("policy check of code above the allowed path does not say %q:\n%s", want, out)
		}
	}
}

// A server whose ${VAR} is not set cannot start: policy check says so
// for the environment it runs in, and a call to one of its tools is told
// why instead of only "not registered".
func TestE2EUpstreamNotStartedSaysWhy(t *testing.T) {
	e := newEnv(t, "servers:\n  gh:\n    command: node\n    args: [/nonexistent/server.mjs]\n    env:\n      TOKEN: ${E2E_UPSTREAM_UNSET_TOKEN}\n"+
		"  broken:\n    command: /bin/sh\n    args: [-c, 'echo the cause >&2; exit 7']\n"+
		"  missing:\n    command: /nonexistent/server\n")
	out, err := exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "upstream server gh will not start in this environment: servers.gh.env.TOKEN takes ${E2E_UPSTREAM_UNSET_TOKEN}, which is not set") ||
		!strings.Contains(string(out), `upstream server missing will not start in this environment: servers.missing.command: command "/nonexistent/server": no executable file there`) {
		t.Errorf("policy check: %v\n%s", err, out)
	}
	cs, stderr := e.connectAs(t, "e2e-client")
	wantError(t, call(t, cs, "gh__search", map[string]any{}), `upstream server "gh" was not started`, "which is not set")
	rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "gh__search"})
	if rec["result"] != "deny" || !strings.Contains(fmt.Sprint(rec["reasons"]), "was not started") {
		t.Errorf("tool_call record %v", rec)
	}
	// A server that exits before the handshake: how it ended, and where
	// its stderr is (the server's log; never the answer or the record).
	res := call(t, cs, "broken__search", map[string]any{})
	wantError(t, res, `upstream server "broken" has not come up yet`, "the process exited with code 7 before it answered", `"upstream stderr"`)
	if strings.Contains(text(res), "the cause") {
		t.Errorf("the upstream's stderr reached the client: %q", text(res))
	}
	if log := stderr.String(); !strings.Contains(log, "the cause") {
		t.Errorf("the upstream's stderr is not in the server's log:\n%s", log)
	}
	// Its launch is audited, and so is its failure.
	var failed map[string]any
	for _, r := range e.records(t) {
		if in, _ := r["input"].(map[string]any); r["kind"] == "upstream" && r["result"] == "deny" && in["server"] == "broken" {
			failed = r
			break
		}
	}
	if reasons := fmt.Sprint(failed["reasons"]); !strings.Contains(reasons, "start failed") || !strings.Contains(reasons, "exited with code 7") ||
		strings.Contains(fmt.Sprint(failed), "the cause") {
		t.Errorf("the failed start's record: %v", failed)
	}
}

// TestE2EUpstreamHungDoesNotHoldTheStart: a server that never answers its
// handshake holds the server's own start up by the first wait (5 s), not
// by its start's deadline (60 s); the client is served meanwhile, and a
// call to its tools says it is still starting.
func TestE2EUpstreamHungDoesNotHoldTheStart(t *testing.T) {
	e := newEnv(t, "servers:\n  hung:\n    command: sleep\n    args: [\"1000\"]\n")
	cs := e.connect(t, "") // fails unless the handshake comes within 30 s
	wantError(t, call(t, cs, "hung__anything", map[string]any{}), `upstream server "hung" has not come up yet`, "taking longer than 5s")
	if res := call(t, cs, "list_categories", map[string]any{}); res.IsError {
		t.Errorf("a built-in tool while the upstream starts: %q", text(res))
	}
}
