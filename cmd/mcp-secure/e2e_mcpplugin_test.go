//go:build unix

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var (
	mcpFixtureOnce sync.Once
	mcpFixtureBin  string
	mcpFixtureErr  error
)

// mcpFixture builds testdata/mcpfixture (an MCP server) once.
func mcpFixture(t *testing.T) string {
	t.Helper()
	mcpFixtureOnce.Do(func() {
		mcpFixtureBin = filepath.Join(filepath.Dir(binPath), "mcpfixture")
		out, err := exec.Command("go", "build", "-o", mcpFixtureBin, "./testdata/mcpfixture").CombinedOutput()
		if err != nil {
			mcpFixtureErr = fmt.Errorf("building the MCP fixture server: %v\n%s", err, out)
		}
	})
	if mcpFixtureErr != nil {
		t.Fatal(mcpFixtureErr)
	}
	return mcpFixtureBin
}

// mcpPluginDir makes e.dir/plugins/<name> with the fixture server as
// "server" and a type mcp manifest (extra appended); it returns the
// manifest's path.
func mcpPluginDir(t *testing.T, e *env, name, extra string) string {
	t.Helper()
	dir := filepath.Join(e.dir, "plugins", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(mcpFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	manifest := fmt.Sprintf("name: %s\nversion: 0.1.0\ntype: mcp\nexecutable: server\nsha256: %s\n%s", name, hex.EncodeToString(sum[:]), extra)
	file := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// A plugin directory whose manifest is of type mcp is served like a
// servers: entry: its tools are pinned and offered under its prefix,
// calls go through the policy and are audited, and its process is
// confined (a file outside the policy cannot be read). A bad manifest
// is left out naming its file, unless plugins.strict.
func TestE2EMCPPluginManifest(t *testing.T) {
	e := newEnv(t, "plugins:\n  external: [plugins/notes, plugins/clash]\n")
	mcpPluginDir(t, e, "notes", "tool_prefix: notes_\n")
	clash := mcpPluginDir(t, e, "clash", "tool_prefix: notes_\n")
	secret := filepath.Join(e.dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("the secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(e.workspace, "notes.txt")
	if err := os.WriteFile(notes, []byte("workspace notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cs := e.connectLogging(t, &stderr)
	got := listNames(t, cs)
	if !slices.Contains(got, "notes_echo") || !slices.Contains(got, "notes_read_file") {
		t.Fatalf("tools = %v, want notes_echo and notes_read_file", got)
	}
	if !strings.Contains(stderr.String(), "MCP plugin left out") || !strings.Contains(stderr.String(), clash) ||
		!strings.Contains(stderr.String(), `tool prefix \"notes_\" overlaps the prefix of`) {
		t.Errorf("the clashing manifest is not reported by its file:\n%s", stderr.String())
	}
	// The start-up log says, for the plugin, how it is confined.
	if !strings.Contains(stderr.String(), `msg="MCP plugin started" upstream=notes`) || !strings.Contains(stderr.String(), `sandbox="Landlock ABI`) {
		t.Errorf("the start-up log does not say how MCP plugin notes is confined:\n%s", stderr.String())
	}
	if res := call(t, cs, "notes_echo", map[string]any{"text": "hi"}); res.IsError || text(res) != "hi" {
		t.Fatalf("notes_echo = %v %q", res.IsError, text(res))
	}
	for _, tc := range []struct {
		name, path string
		isError    bool
		want       string
	}{
		{"allow/workspace-file", notes, false, "workspace notes"},
		{"deny/file-outside-the-policy", secret, true, "permission denied"},
		{"deny/audit-log", e.audit, true, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, cs, "notes_read_file", map[string]any{"path": tc.path})
			if res.IsError != tc.isError || !strings.Contains(text(res), tc.want) {
				t.Fatalf("notes_read_file %s = %v %q, want %v %q", tc.path, res.IsError, text(res), tc.isError, tc.want)
			}
			rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "notes_read_file"})
			if rec["result"] != "allow" {
				t.Fatalf("tool_call record %v, want allow (the sandbox, not the policy, refuses)", rec)
			}
			status := "ok"
			if tc.isError {
				status = "tool_error"
			}
			e.findRecord(t, map[string]any{"kind": "tool_result", "decision_id": rec["decision_id"], "status": status})
		})
	}
	cs.Close()
	if strings.Contains(fmt.Sprint(e.records(t)), "the secret") {
		t.Error("the secret reached the audit log")
	}
	e.findRecord(t, map[string]any{"kind": "tool_definition", "tool": "notes_echo", "result": "allow"})
	start := e.findRecord(t, map[string]any{"kind": "upstream", "result": "allow"})
	if in := start["input"].(map[string]any); in["server"] != "notes" || !strings.HasPrefix(fmt.Sprint(in["executable"]), filepath.Join(e.dir, "plugins", "notes")) {
		t.Errorf("start record input = %v", in)
	}

	t.Run("policy-check-warns", func(t *testing.T) {
		out, err := exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
		if code := exitCode(err); code != 0 || !strings.Contains(string(out), "warning: MCP plugin left out: "+clash) {
			t.Errorf("policy check: exit %d, %s", code, out)
		}
	})
	t.Run("strict", func(t *testing.T) {
		e.write(t, "policy.yaml", strings.Replace(mustRead(t, e.policy), "plugins:\n", "plugins:\n  strict: true\n", 1))
		cmd := e.command()
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		if code := exitCode(err); code == 0 || !strings.Contains(string(out), clash) {
			t.Errorf("serve with plugins.strict: exit %d, %s", code, out)
		}
	})
}

// A client cancels a call whose request the upstream is not reading yet
// (it is busy, and the request is more than the pipe holds): the client
// gets no answer, the tool_result record says cancelled, and the upstream
// gets the request whole and then the cancel. It goes on serving, the
// same process, rather than being restarted for a message cut short.
func TestE2EMCPPluginCallCancelledWhileItsRequestIsWritten(t *testing.T) {
	e := newEnv(t, "plugins:\n  external: [plugins/busy]\n")
	mcpPluginDir(t, e, "busy", "")
	var stderr syncBuffer
	cs := e.connectLogging(t, &stderr)
	pid := text(call(t, cs, "busy__pid", map[string]any{}))
	if res := call(t, cs, "busy__stall", map[string]any{"ms": 1500}); res.IsError {
		t.Fatalf("busy__stall: %q", text(res))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	big := map[string]any{"text": strings.Repeat("z", 512<<10)}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "busy__echo", Arguments: big}); err == nil {
		t.Fatalf("the cancelled call was answered: %v %.80q", res.IsError, text(res))
	}
	if got := text(call(t, cs, "busy__pid", map[string]any{})); got != pid {
		t.Fatalf("pid %s after the cancel, %s before: the upstream was started again\n%s", got, pid, stderr.String())
	}
	rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "busy__echo", "result": "allow"})
	e.findRecord(t, map[string]any{"kind": "tool_result", "decision_id": rec["decision_id"], "status": "cancelled"})
	if strings.Contains(stderr.String(), "cut short") || strings.Contains(stderr.String(), "restarting") {
		t.Errorf("the upstream's connection was cut:\n%s", stderr.String())
	}
}
