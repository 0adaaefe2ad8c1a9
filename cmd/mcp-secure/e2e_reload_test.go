package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// reloadClient is a Go SDK client on the real binary that counts the
// notifications/tools/list_changed it receives.
type reloadClient struct {
	cs      *mcp.ClientSession
	cmd     *exec.Cmd
	changed chan struct{}
	stderr  *capture
}

// capture keeps the server's stderr and logs it.
type capture struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.b.Write(p)
	c.mu.Unlock()
	c.t.Logf("server: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

func (e *env) connectReload(t *testing.T, protocol string) *reloadClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rc := &reloadClient{changed: make(chan struct{}, 16), stderr: &capture{t: t}}
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-reload", Version: "1.0.0"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case rc.changed <- struct{}{}:
			default:
			}
		},
	})
	var opts *mcp.ClientSessionOptions
	if protocol != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: protocol}
	}
	rc.cmd = e.command()
	rc.cmd.Stderr = rc.stderr
	var transport mcp.Transport = &mcp.CommandTransport{Command: rc.cmd}
	if w := transcript(t); w != nil {
		transport = &mcp.LoggingTransport{Transport: transport, Writer: w}
	}
	cs, err := client.Connect(ctx, transport, opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	rc.cs = cs
	return rc
}

func (rc *reloadClient) hup(t *testing.T) {
	t.Helper()
	if err := rc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
}

func (rc *reloadClient) tools(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := rc.cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// waitChanged waits for a notifications/tools/list_changed.
func (rc *reloadClient) waitChanged(t *testing.T) {
	t.Helper()
	select {
	case <-rc.changed:
	case <-time.After(15 * time.Second):
		t.Fatal("no notifications/tools/list_changed within 15s")
	}
}

// waitRecords waits until n records of kind policy_reload are in the
// audit log, and returns them.
func (e *env) waitReloads(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []map[string]any
		for _, r := range e.records(t) {
			if r["kind"] == "policy_reload" {
				got = append(got, r)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d policy_reload records after 15s, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// A reload on SIGHUP swaps the policy: the session is told its tool list
// changed, the new list leaves out the newly denied tool, a call to it is
// denied and audited, and the reload is audited with both hashes. A
// broken policy is then rejected, audited with its error, and the one in
// force stays: the tool stays denied though the broken file would allow
// it.
func TestE2EReloadOnSignal(t *testing.T) {
	for _, protocol := range []string{"2025-11-25", ""} {
		name := protocol
		if name == "" {
			name = "stateless"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "")
			e.extraArgs = []string{"--reload-interval", "0"}
			original := readFile(t, e.policy)
			rc := e.connectReload(t, protocol)

			before := rc.tools(t)
			if !slices.Contains(before, "list_categories") || !slices.Contains(before, "search_tools") {
				t.Fatalf("tools before the reload = %v", before)
			}
			if res := call(t, rc.cs, "list_categories", map[string]any{}); res.IsError {
				t.Fatalf("list_categories before the reload: %s", text(res))
			}

			// Deny list_categories and reload.
			e.write(t, "policy.yaml", strings.Replace(original, "tools:\n", "tools:\n  denied: [\"list_categories\"]\n", 1))
			rc.hup(t)
			rc.waitChanged(t)
			after := rc.tools(t)
			if slices.Contains(after, "list_categories") || !slices.Contains(after, "search_tools") {
				t.Fatalf("tools after the reload = %v, want list_categories gone", after)
			}
			res := call(t, rc.cs, "list_categories", map[string]any{})
			if !res.IsError || !strings.Contains(text(res), `tools.denied pattern "list_categories"`) {
				t.Fatalf("list_categories after the reload: isError=%v %s", res.IsError, text(res))
			}
			e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories", "result": "deny"})
			reloads := e.waitReloads(t, 1)
			applied := reloads[0]
			pc, _ := applied["policy"].(map[string]any)
			if applied["result"] != "allow" || pc == nil || pc["trigger"] != "signal" {
				t.Fatalf("reload record = %v", applied)
			}
			oldHash, _ := pc["old_hash"].(string)
			newHash, _ := pc["new_hash"].(string)
			if !sha256Hex.MatchString(oldHash) || !sha256Hex.MatchString(newHash) || oldHash == newHash {
				t.Fatalf("reload hashes old=%q new=%q", oldHash, newHash)
			}

			// A broken policy that would allow it again: rejected.
			e.write(t, "policy.yaml", original+"\nnot_a_section: 1\n")
			rc.hup(t)
			reloads = e.waitReloads(t, 2)
			rejected := reloads[1]
			rpc, _ := rejected["policy"].(map[string]any)
			errText, _ := rejected["error"].(string)
			if rejected["result"] != "deny" || !strings.Contains(errText, "not_a_section") || rpc["old_hash"] != newHash {
				t.Fatalf("rejected reload record = %v", rejected)
			}
			res = call(t, rc.cs, "list_categories", map[string]any{})
			if !res.IsError || !strings.Contains(text(res), "tools.denied") {
				t.Fatalf("list_categories after a rejected reload: isError=%v %s", res.IsError, text(res))
			}
			if got := rc.tools(t); slices.Contains(got, "list_categories") {
				t.Fatalf("tools after a rejected reload = %v", got)
			}
			if !strings.Contains(rc.stderr.String(), "policy reload rejected") {
				t.Error("the rejected reload was not logged")
			}
		})
	}
}

// A change to a user module is reloaded without a signal, and a change
// only a restart can apply is rejected whole, naming what to restart for.
func TestE2EReloadOnFileChange(t *testing.T) {
	e := newEnv(t, "rego:\n  modules: [extra.rego]\n")
	e.write(t, "extra.rego", "package mcp.tools\n")
	e.extraArgs = []string{"--reload-interval", "100ms"}
	rc := e.connectReload(t, "2025-11-25")
	if res := call(t, rc.cs, "search_tools", map[string]any{"query": "bug"}); res.IsError {
		t.Fatalf("search_tools before: %s", text(res))
	}
	rc.tools(t)
	e.write(t, "extra.rego", `package mcp.tools

deny contains "searching is paused" if input.tool == "search_tools"
`)
	rc.waitChanged(t)
	r := e.waitReloads(t, 1)[0]
	if pc, _ := r["policy"].(map[string]any); r["result"] != "allow" || pc["trigger"] != "file change" {
		t.Fatalf("reload record = %v", r)
	}
	res := call(t, rc.cs, "search_tools", map[string]any{"query": "bug"})
	if !res.IsError || !strings.Contains(text(res), "searching is paused") {
		t.Fatalf("search_tools after the module changed: %s", text(res))
	}

	// Moving the filesystem roots needs a restart: rejected whole. The
	// same edit denies list_categories, which would show if the rest of
	// it were applied.
	p := strings.Replace(readFile(t, e.policy), e.workspace+"/**", e.dir+"/**", 1)
	p = strings.Replace(p, "tools:\n", "tools:\n  denied: [\"list_categories\"]\n", 1)
	if !strings.Contains(p, "list_categories") || !strings.Contains(p, e.dir+"/**") {
		t.Fatalf("the edit did not take:\n%s", p)
	}
	e.write(t, "policy.yaml", p)
	r = e.waitReloads(t, 2)[1]
	if msg, _ := r["error"].(string); r["result"] != "deny" || !strings.Contains(msg, "restart") || !strings.Contains(msg, "filesystem.allowed_paths") {
		t.Fatalf("reload record = %v", r)
	}
	if res := call(t, rc.cs, "search_tools", map[string]any{"query": "bug"}); !res.IsError || !strings.Contains(text(res), "searching is paused") {
		t.Fatalf("the module of the policy in force no longer applies: %v %s", res.IsError, text(res))
	}
	if res := call(t, rc.cs, "list_categories", map[string]any{}); res.IsError {
		t.Fatalf("part of the rejected edit was applied: list_categories is refused: %s", text(res))
	}
}

// A changed audit section cannot be applied by a reload: the rest is,
// the log stays where it is, and the record names what was kept.
func TestE2EReloadKeepsAudit(t *testing.T) {
	e := newEnv(t, "")
	e.extraArgs = []string{"--reload-interval", "0"}
	rc := e.connectReload(t, "2025-11-25")
	p := readFile(t, e.policy)
	p = strings.Replace(p, e.audit, e.dir+"/elsewhere/audit.log", 1)
	p = strings.Replace(p, "tools:\n", "tools:\n  denied: [\"list_categories\"]\n", 1)
	e.write(t, "policy.yaml", p)
	rc.hup(t)
	r := e.waitReloads(t, 1)[0]
	pc, _ := r["policy"].(map[string]any)
	if r["result"] != "allow" || fmt.Sprint(pc["kept"]) != "[audit]" {
		t.Fatalf("reload record = %v", r)
	}
	if res := call(t, rc.cs, "list_categories", map[string]any{}); !res.IsError {
		t.Fatal("the reloaded tools section is not in force")
	}
	e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories", "result": "deny"})
	if !strings.Contains(rc.stderr.String(), "audit needs a restart") {
		t.Error("the kept audit section was not logged")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
