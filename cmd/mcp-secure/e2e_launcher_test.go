//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// TestE2ESandboxLauncher: children start through mcp-secure-launch when
// it sits beside the server's binary, and through the server's own binary
// when it is absent or cannot be trusted; either way they are confined
// the same, and the start-up log says which launcher runs.
func TestE2ESandboxLauncher(t *testing.T) {
	sbNeedLandlock(t)
	launcher := filepath.Join(filepath.Dir(binPath), sandbox.LauncherName)
	for _, c := range []struct {
		name string
		// install lays the binaries out in dir and returns the server's.
		install func(t *testing.T, dir string) string
		log     func(dir string) string // what the log's launcher line says
	}{
		{"separate", func(t *testing.T, dir string) string {
			lnCopy(t, launcher, filepath.Join(dir, sandbox.LauncherName), 0o755)
			return lnCopy(t, binPath, filepath.Join(dir, "mcp-secure"), 0o755)
		}, func(dir string) string { return "launcher=" + filepath.Join(dir, sandbox.LauncherName) }},
		{"self/absent", func(t *testing.T, dir string) string {
			return lnCopy(t, binPath, filepath.Join(dir, "mcp-secure"), 0o755)
		}, func(string) string { return `launcher="the server's own binary, re-executed"` }},
		{"self/untrusted", func(t *testing.T, dir string) string {
			lnCopy(t, launcher, filepath.Join(dir, sandbox.LauncherName), 0o777)
			return lnCopy(t, binPath, filepath.Join(dir, "mcp-secure"), 0o755)
		}, func(string) string { return "not used: writable by group or others" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "commands:\n  allowed: [cat]\n")
			outside := filepath.Join(e.dir, "outside.txt")
			os.WriteFile(outside, []byte("OUTSIDE-SECRET"), 0o644)
			os.WriteFile(filepath.Join(e.workspace, "inside.txt"), []byte("INSIDE-TEXT"), 0o644)
			bin := c.install(t, t.TempDir())
			cs, logs := lnConnect(t, e, bin)

			if _, out, code, stderr := sbRun(t, cs, "cat", filepath.Join(e.workspace, "inside.txt")); code != 0 || out != "INSIDE-TEXT" {
				t.Errorf("allow/read-inside: exit %d out %q err %q", code, out, stderr)
			}
			res, out, code, stderr := sbRun(t, cs, "cat", outside)
			if res.IsError || code == 0 || strings.Contains(out, "OUTSIDE-SECRET") || !strings.Contains(stderr, "Permission denied") {
				t.Errorf("deny/read-outside: not stopped by the sandbox: exit %d out %q err %q", code, out, stderr)
			}
			// The command was allowed and ran: its record is the tool
			// result with the exit status the sandbox caused.
			rec := e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run"})
			if rec["result"] != "allow" {
				t.Errorf("command record %v", rec)
			}
			cs.Close()
			if want := c.log(filepath.Dir(bin)); !strings.Contains(logs.String(), want) {
				t.Errorf("the log does not say %q:\n%s", want, logs.String())
			}
		})
	}
}

// lnCopy copies the file src to dst with mode.
func lnCopy(t *testing.T, src, dst string, mode os.FileMode) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
	return dst
}

// lnConnect starts bin serving e's policy and connects a client; the
// server's log collects in the buffer.
func lnConnect(t *testing.T, e *env, bin string) (*mcp.ClientSession, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(bin, "serve", "--policy", e.policy)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"))
	logs := &syncBuffer{}
	cmd.Stderr = logs
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() { cs.Close() })
	return cs, logs
}

// TestE2EServerBinariesProtected: the server's executable and the
// launcher beside it are the server's own files, even in a directory
// the policy lets tools write: a tool that plants a launcher (trusted at
// the next start, unconfined) or replaces the server is denied, audited.
func TestE2EServerBinariesProtected(t *testing.T) {
	e := newEnv(t, "")
	dir := filepath.Join(e.workspace, "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := lnCopy(t, binPath, filepath.Join(dir, "mcp-secure"), 0o755)
	cs, logs := lnConnect(t, e, bin)
	for _, c := range []struct{ path, what string }{
		{filepath.Join(dir, sandbox.LauncherName), "sandbox launcher"},
		{bin, "server executable"},
	} {
		res := call(t, cs, "fixture_write", map[string]any{"path": c.path, "text": "#!/bin/sh\n"})
		if !res.IsError || !strings.Contains(text(res), c.what) {
			t.Fatalf("writing the %s was not denied as the server's own: isError=%v %q\n%s", c.what, res.IsError, text(res), logs.String())
		}
		rec := e.findRecord(t, map[string]any{"kind": "filesystem", "result": "deny"})
		if in, _ := rec["input"].(map[string]any); in["path"] != c.path {
			t.Errorf("filesystem deny record input %v, want path %s", in, c.path)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, sandbox.LauncherName)); !os.IsNotExist(err) {
		t.Errorf("a launcher was planted: %v", err)
	}
	if res := call(t, cs, "fixture_write", map[string]any{"path": filepath.Join(dir, "notes.txt"), "text": "ok"}); res.IsError {
		t.Fatalf("a write elsewhere in the directory was denied: %s", text(res))
	}
}
