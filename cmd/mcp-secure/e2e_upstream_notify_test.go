package main

import (
	"context"
	"encoding/json"
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

// notes collects the notifications a client receives.
type notes struct {
	mu       sync.Mutex
	changed  int
	progress []string // "token message"
	logs     []string // "level data"
}

func (n *notes) options() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			n.mu.Lock()
			n.changed++
			n.mu.Unlock()
		},
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			n.mu.Lock()
			n.progress = append(n.progress, strings.TrimSpace(strings.Join([]string{tokenText(r.Params.ProgressToken), r.Params.Message}, " ")))
			n.mu.Unlock()
		},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			n.mu.Lock()
			n.logs = append(n.logs, string(r.Params.Level)+" "+fmtAny(r.Params.Data))
			n.mu.Unlock()
		},
	}
}

func tokenText(v any) string { s, _ := v.(string); return s }

func fmtAny(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

func (n *notes) changes() int { n.mu.Lock(); defer n.mu.Unlock(); return n.changed }

// connectNotes is connectLogging with a client that records
// notifications.
func (e *env) connectNotes(t *testing.T, stderr *syncBuffer, n *notes) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := e.command()
	cmd.Stderr = &teeWriter{t: t, b: stderr}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1.2.3"}, n.options()).
		Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func listNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	return out
}

// poll retries cond for up to 30 s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An upstream that changes its tools at run time: the client is sent
// notifications/tools/list_changed, a new tool is pinned and offered, a
// changed definition leaves the list and is denied until approved.
func TestE2EUpstreamListChangedReachesClients(t *testing.T) {
	u := newUpstreamEnv(t, defaultNetwork, "", "")
	var stderr syncBuffer
	var n notes
	cs := u.connectNotes(t, &stderr, &n)
	if got := listNames(t, cs); !slices.Contains(got, "demo__echo") || slices.Contains(got, "demo__late") {
		t.Fatalf("tools at start = %v", got)
	}
	before := n.changes()
	if res := call(t, cs, "demo__add_tool", map[string]any{"name": "late"}); res.IsError {
		t.Fatalf("add_tool: %q", text(res))
	}
	poll(t, "notifications/tools/list_changed", func() bool { return n.changes() > before })
	// A tool added at run time is not trusted on first sight: recorded,
	// left out of the list and denied until the operator approves it.
	rec := u.findRecord(t, map[string]any{"kind": "tool_definition", "tool": "demo__late", "result": "deny"})
	if fmt.Sprint(rec["reasons"]) != "[new tool: approve to pin]" {
		t.Errorf("new tool record reasons = %v", rec["reasons"])
	}
	if got := listNames(t, cs); slices.Contains(got, "demo__late") {
		t.Errorf("tools before approval = %v, want demo__late left out", got)
	}
	res := call(t, cs, "demo__late", map[string]any{})
	if !res.IsError || !strings.Contains(text(res), "mcp-secure tools approve demo__late") {
		t.Fatalf("demo__late before approval = %v %q", res.IsError, text(res))
	}
	// The policy's reason for input.tool_definition.changed (the record's
	// input holds only what audit.include names).
	denied := u.findRecord(t, map[string]any{"kind": "tool_call", "tool": "demo__late", "result": "deny"})
	if !strings.Contains(fmt.Sprint(denied["reasons"]), "changed its definition") {
		t.Errorf("denied call reasons = %v", denied["reasons"])
	}
	out, err := exec.Command(binPath, "tools", "pins", "--policy", u.policy).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "demo__late\tPENDING") || !strings.Contains(string(out), "Added at run time: late.") {
		t.Fatalf("tools pins: %v\n%s", err, out)
	}
	out, err = exec.Command(binPath, "tools", "approve", "--policy", u.policy, "demo__late").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "demo__late: approved") {
		t.Fatalf("tools approve: %v\n%s", err, out)
	}
	if res := call(t, cs, "demo__late", map[string]any{}); res.IsError || text(res) != "late here" {
		t.Fatalf("demo__late after approval = %v %q", res.IsError, text(res))
	}
	if got := listNames(t, cs); !slices.Contains(got, "demo__late") {
		t.Errorf("tools after approval = %v, want demo__late", got)
	}
	u.findRecord(t, map[string]any{"kind": "tool_call", "tool": "demo__late", "result": "allow"})

	// A definition changed at run time: announced, left out of the list,
	// denied at the next call.
	before = n.changes()
	if res := call(t, cs, "demo__mutate", map[string]any{"description": "Now also reads ~/.ssh."}); res.IsError {
		t.Fatalf("mutate: %q", text(res))
	}
	poll(t, "notifications/tools/list_changed after the change", func() bool { return n.changes() > before })
	poll(t, "demo__echo left out of the list", func() bool { return !slices.Contains(listNames(t, cs), "demo__echo") })
	res = call(t, cs, "demo__echo", map[string]any{"text": "x"})
	if !res.IsError || !strings.Contains(text(res), "changed its definition") {
		t.Fatalf("changed echo = %v %q", res.IsError, text(res))
	}
	cs.Close()
	u.findRecord(t, map[string]any{"kind": "tool_definition", "tool": "demo__echo", "result": "deny"})
	u.findRecord(t, map[string]any{"kind": "tool_call", "tool": "demo__echo", "result": "deny"})
}

// Progress of a call in flight reaches the client under its own token;
// the upstream's log message reaches the server's log and the client.
func TestE2EUpstreamProgressAndLogs(t *testing.T) {
	u := newUpstreamEnv(t, defaultNetwork, "", "")
	var stderr syncBuffer
	var n notes
	cs := u.connectNotes(t, &stderr, &n)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	params := &mcp.CallToolParams{Name: "demo__work", Arguments: map[string]any{"steps": 5}}
	params.SetProgressToken("client-tok-7")
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError || text(res) != "worked" {
		t.Fatalf("work = %v %v", res, err)
	}
	n.mu.Lock()
	progress, logs := slices.Clone(n.progress), slices.Clone(n.logs)
	n.mu.Unlock()
	// Each step is 100 ms apart: the last may be handled after the
	// answer and dropped, the others are passed on.
	if len(progress) < 3 || progress[0] != "client-tok-7 step 1" {
		t.Errorf("progress = %v, want steps under the client's token", progress)
	}
	if !slices.Contains(logs, "warning working in 5 steps") {
		t.Errorf("log messages = %v", logs)
	}
	if !strings.Contains(stderr.String(), "working in 5 steps") {
		t.Error("the upstream's log message is not in the server's log")
	}
}

// An upstream's log message past the 16 KiB cap keeps its key-based
// redaction: the values under api_key and auth (nested, which no text
// pattern finds) reach neither the client nor the server's log.
func TestE2EUpstreamLargeLogMessageRedacted(t *testing.T) {
	u := newUpstreamEnv(t, defaultNetwork, "", "")
	var stderr syncBuffer
	var n notes
	cs := u.connectNotes(t, &stderr, &n)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if res := call(t, cs, "demo__big_log", map[string]any{}); res.IsError || text(res) != "logged" {
		t.Fatalf("big_log = %v %q", res.IsError, text(res))
	}
	poll(t, "the log message", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.logs) > 0
	})
	n.mu.Lock()
	logs := strings.Join(n.logs, "\n")
	n.mu.Unlock()
	if strings.Contains(logs, "k-abc-plain") || strings.Contains(logs, "k-def-nested") {
		t.Errorf("a value under a sensitive key reached the client: %.200s", logs)
	}
	if !strings.Contains(logs, "api_key") || len(logs) > 17<<10 {
		t.Errorf("log message of %d bytes: %.200s; want it redacted and capped", len(logs), logs)
	}
	cs.Close()
	if strings.Contains(stderr.String(), "k-abc-plain") || strings.Contains(stderr.String(), "k-def-nested") {
		t.Error("a value under a sensitive key reached the server's log")
	}
}

// An upstream whose first start fails is retried: calls meanwhile are
// refused as unavailable, with the reason (or as denied, when the policy
// denies the tool anyway), and once it is up its tools are offered and
// the client is told.
func TestE2EUpstreamFailedFirstStartIsRetried(t *testing.T) {
	u := newUpstreamEnv(t, defaultNetwork, "      START_GATE: \"${START_GATE}\"\n",
		"tools:\n  timeout: 10\n  rate_limits:\n    default: 100000\n  denied: [demo__read_file]\n")
	gate := filepath.Join(u.workspace, "gate") // the upstream may look there
	u.vars = append(u.vars, "START_GATE="+gate)
	var stderr syncBuffer
	var n notes
	cs := u.connectNotes(t, &stderr, &n)
	if got := listNames(t, cs); slices.Contains(got, "demo__echo") {
		t.Fatalf("tools before the upstream is up = %v", got)
	}
	if !strings.Contains(stderr.String(), "upstream server not started; it is being retried") {
		t.Error("the start-up log does not say the upstream is being retried")
	}
	res := call(t, cs, "demo__echo", map[string]any{"text": "early"})
	if !res.IsError || !strings.Contains(text(res), `tool "demo__echo" is not available yet: upstream server "demo" has not come up yet`) || !strings.Contains(text(res), "retried") {
		t.Fatalf("call before the upstream is up = %v %q", res.IsError, text(res))
	}
	if sc, _ := res.StructuredContent.(map[string]any); sc["error"] != "unavailable" || sc["target"] != "demo__echo" {
		t.Errorf("structured content before the upstream is up = %v, want error unavailable", res.StructuredContent)
	}
	u.findRecord(t, map[string]any{"kind": "tool_call", "tool": "demo__echo", "result": "deny"})
	// A tool the policy denies is denied, up or not.
	res = call(t, cs, "demo__read_file", map[string]any{"path": u.secret})
	if sc, _ := res.StructuredContent.(map[string]any); !res.IsError || sc["error"] != "denied_by_policy" || !strings.Contains(text(res), "tools.denied") {
		t.Errorf("a denied tool before the upstream is up = %v %q %v", res.IsError, text(res), res.StructuredContent)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	poll(t, "notifications/tools/list_changed", func() bool { return n.changes() > 0 })
	poll(t, "demo__echo listed", func() bool { return slices.Contains(listNames(t, cs), "demo__echo") })
	if res := call(t, cs, "demo__echo", map[string]any{"text": "late"}); res.IsError || text(res) != "late" {
		t.Fatalf("call once up = %v %q", res.IsError, text(res))
	}
	cs.Close()
	starts := 0
	for _, r := range u.records(t) {
		if r["kind"] == "upstream" && r["result"] == "allow" {
			starts++
		}
	}
	if starts < 2 {
		t.Errorf("%d upstream start records, want at least 2 (the failed start and the one that came up)", starts)
	}
}
