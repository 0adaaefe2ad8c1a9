package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sleepPolicy lets fixture_run start sleep, and nothing else.
const sleepPolicy = "commands:\n  allowed: [sleep]\n"

// A client that writes its requests and closes stdin gets an answer to
// every one of them, then the server exits 0.
func TestE2EAnswersEveryRequestBeforeExit(t *testing.T) {
	e := newEnv(t, sleepPolicy)
	lines := []string{
		`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"piped","version":"0"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_categories","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"fixture_run","arguments":{"argv":["sleep","0.5"]}}}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}`,
	}
	cmd := e.command()
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &testWriter{t: t}
	if err := runBounded(t, cmd, 30*time.Second); err != nil {
		t.Fatalf("server exited with %v", err)
	}
	answered := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		answered[fmt.Sprint(m["id"])] = true
		if fmt.Sprint(m["id"]) == "4" && strings.Contains(line, `"isError":true`) {
			t.Errorf("the sleep call failed: %s", line)
		}
	}
	for _, id := range []string{"0", "1", "2", "3", "4", "5"} {
		if !answered[id] {
			t.Errorf("request %s was not answered; output:\n%s", id, stdout.String())
		}
	}
	e.findRecord(t, map[string]any{"kind": "tool_result", "tool": "fixture_run", "status": "ok"})
}

// On SIGTERM the server stops reading, gives calls in flight the grace
// period, cancels them (killing their processes), answers each, and exits 0.
func TestE2ESigtermAnswersCallsInFlight(t *testing.T) {
	e := newEnv(t, sleepPolicy)
	r := e.startRawArgs(t, "--shutdown-grace", "300ms")
	r.initialize()
	const marker = "31.125" // a sleep no other process on the machine runs
	r.send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fixture_run","arguments":{"argv":["sleep","` + marker + `"]}}}`)
	waitFor(t, 10*time.Second, "the sleep to start", func() bool { return len(processesWithArgs("sleep", marker)) > 0 })
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m := r.recv()
	if fmt.Sprint(m["id"]) != "7" {
		t.Fatalf("answer = %v", m)
	}
	res, _ := m["result"].(map[string]any)
	if res["isError"] != true || !strings.Contains(fmt.Sprint(res["content"]), "cancelled") {
		t.Errorf("answer to the cancelled call = %v", m)
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not exit after SIGTERM")
	}
	waitFor(t, 5*time.Second, "the sleep to be gone", func() bool { return len(processesWithArgs("sleep", marker)) == 0 })
	e.findRecord(t, map[string]any{"kind": "tool_result", "tool": "fixture_run", "status": "cancelled"})
}

// Two requests with one id in flight cannot both be answered
// unambiguously: the second is refused. Past --max-in-flight, requests
// are refused at once instead of queueing without bound.
func TestE2EDuplicateIDsAndInFlightCap(t *testing.T) {
	e := newEnv(t, sleepPolicy)
	r := e.startRawArgs(t, "--max-in-flight", "2")
	r.initialize()
	slow := func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"fixture_run","arguments":{"argv":["sleep","1"]}}}`
	}
	r.send(slow("11"))
	r.send(slow("11"))
	m := r.recv()
	if fmt.Sprint(m["id"]) != "11" || m["error"] == nil || !strings.Contains(fmt.Sprint(m["error"]), "already in flight") {
		t.Fatalf("duplicate id answer = %v", m)
	}
	r.send(slow(`"12"`))
	r.send(slow("13"))
	m = r.recv()
	if fmt.Sprint(m["id"]) != "13" || !strings.Contains(fmt.Sprint(m["error"]), "too many requests in flight (limit 2)") {
		t.Fatalf("over-cap answer = %v", m)
	}
	got := map[string]bool{}
	for range 2 {
		m := r.recv()
		if m["result"] == nil {
			t.Fatalf("slow call failed: %v", m)
		}
		got[fmt.Sprint(m["id"])] = true
	}
	if !got["11"] || !got["12"] {
		t.Fatalf("answers = %v", got)
	}
	// Answered ids may be used again.
	r.send(`{"jsonrpc":"2.0","id":11,"method":"ping"}`)
	if m := r.recv(); fmt.Sprint(m["id"]) != "11" || m["error"] != nil {
		t.Fatalf("reused id = %v", m)
	}
}

// A session that initialized as one client cannot claim to be another in
// a request's _meta: the policy and the audit see the handshake's name.
func TestE2EClientIdentityBoundToSession(t *testing.T) {
	e := newEnv(t, "rego:\n  modules: [trusted.rego]\n")
	e.write(t, "trusted.rego", `package mcp.tools

deny contains "only trusted-ci may list categories" if {
	input.tool == "list_categories"
	input.client.name != "trusted-ci"
}
`)
	cs := e.connect(t, "2025-11-25")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_categories", Arguments: map[string]any{},
		Meta: mcp.Meta{"io.modelcontextprotocol/clientInfo": map[string]any{"name": "trusted-ci", "version": "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(text(res), "only trusted-ci may list categories") {
		t.Fatalf("spoofed identity was believed: %v %q", res.IsError, text(res))
	}
	rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories"})
	if c, _ := rec["client"].(map[string]any); c["name"] != "e2e-client" {
		t.Errorf("audit client = %v", rec["client"])
	}
}

// Keys that collide up to case are refused before the policy is asked:
// a user rule on "file" cannot be walked around with "FILE".
func TestE2ECaseCollidingKeysRefused(t *testing.T) {
	e := newEnv(t, "rego:\n  modules: [nofile.rego]\n")
	e.write(t, "nofile.rego", `package mcp.tools

deny contains "private.txt is off limits" if endswith(input.arguments.file, "private.txt")
`)
	if err := os.WriteFile(filepath.Join(e.workspace, "private.txt"), []byte("private-data-77"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.workspace, "ok.txt"), []byte("ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "fixture_read_plain", map[string]any{"file": e.workspace + "/ok.txt", "FILE": e.workspace + "/private.txt"})
	if !res.IsError || strings.Contains(text(res), "private-data-77") || !strings.Contains(text(res), "differ only in case") {
		t.Fatalf("got %v %q", res.IsError, text(res))
	}
	e.findRecord(t, map[string]any{"kind": "validation", "tool": "fixture_read_plain", "result": "deny"})
	for _, r := range e.records(t) {
		if r["kind"] == "tool_call" && r["tool"] == "fixture_read_plain" {
			t.Errorf("the call reached the policy: %v", r)
		}
	}
}

// Each session has its own id in the audit log, and each allowed call is
// followed by a tool_result record linked by its decision id.
func TestE2ESessionsAndToolResults(t *testing.T) {
	e := newEnv(t, "")
	for range 2 {
		cs := e.connect(t, "2025-11-25")
		if res := call(t, cs, "list_categories", map[string]any{}); res.IsError {
			t.Fatalf("list_categories: %q", text(res))
		}
		cs.Close()
	}
	sessions := map[any]bool{}
	var calls, results []map[string]any
	for _, r := range e.records(t) {
		switch r["kind"] {
		case "tool_call":
			calls = append(calls, r)
			sessions[r["session_id"]] = true
		case "tool_result":
			results = append(results, r)
		}
	}
	if len(calls) != 2 || len(results) != 2 {
		t.Fatalf("calls %d, results %d", len(calls), len(results))
	}
	if len(sessions) != 2 || sessions[nil] || sessions[""] {
		t.Errorf("session ids = %v", sessions)
	}
	for i := range calls {
		if results[i]["decision_id"] != calls[i]["decision_id"] || results[i]["status"] != "ok" || results[i]["session_id"] != calls[i]["session_id"] {
			t.Errorf("result %v does not follow call %v", results[i], calls[i])
		}
	}
}

// A flood of refusals a client can repeat for free writes a bounded
// number of records: past the budget they are counted in a summary.
func TestE2ERefusalFloodIsCoalesced(t *testing.T) {
	e := newEnv(t, "")
	cs := e.connect(t, "2025-11-25")
	const n = 120
	for i := range n {
		res := call(t, cs, fmt.Sprintf("no_such_tool_%d", i), map[string]any{})
		if !res.IsError {
			t.Fatalf("unknown tool %d answered without error", i)
		}
	}
	cs.Close()
	waitFor(t, 10*time.Second, "the summary record", func() bool {
		for _, r := range e.records(t) {
			if r["kind"] == "audit_summary" {
				return true
			}
		}
		return false
	})
	denials, counted := 0, 0.0
	for _, r := range e.records(t) {
		switch r["kind"] {
		case "tool_call":
			denials++
		case "audit_summary":
			c, _ := r["count"].(float64)
			counted += c
		}
	}
	if denials >= n || denials == 0 || denials+int(counted) != n {
		t.Errorf("%d denial records and %v counted in summaries, want fewer than %d records that with the summaries account for all", denials, counted, n)
	}
}

// The server's own files are never a tool's, even when the allowed paths
// cover them: the audit log, the policy file and the Rego modules.
func TestE2EServerFilesOffLimits(t *testing.T) {
	dir := t.TempDir()
	e := &env{dir: dir, policy: filepath.Join(dir, "policy.yaml"), audit: filepath.Join(dir, "logs", "audit.log"), workspace: dir}
	e.write(t, "rules.rego", "package mcp.tools\n\ndeny contains \"never\" if input.tool == \"nothing\"\n")
	e.write(t, "policy.yaml", fmt.Sprintf(`version: "1.0"
filesystem:
  allowed_paths: ["%s/**"]
audit:
  log_file: "%s"
rego:
  modules: [rules.rego]
tools:
  timeout: 10
  rate_limits: {default: 600}
`, dir, e.audit))
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("fine"), 0o600); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "2025-11-25")
	if res := call(t, cs, "fixture_read", map[string]any{"path": dir + "/notes.txt"}); res.IsError {
		t.Fatalf("a plain file in the allowed paths was refused: %q", text(res))
	}
	before, _ := os.ReadFile(e.policy)
	for _, tc := range []struct {
		tool string
		args map[string]any
		what string
	}{
		{"fixture_read", map[string]any{"path": e.audit}, "audit log directory"},
		{"fixture_write", map[string]any{"path": e.audit, "text": `{"forged":true}`}, "audit log directory"},
		{"fixture_write", map[string]any{"path": dir + "/logs/audit.log.1", "text": "x"}, "audit log directory"},
		{"fixture_write", map[string]any{"path": e.policy, "text": "version: \"1.0\"\n"}, "policy file"},
		{"fixture_read_plain", map[string]any{"file": dir + "/rules.rego"}, "Rego module"},
	} {
		res := call(t, cs, tc.tool, tc.args)
		if !res.IsError || !strings.Contains(text(res), "is the server's "+tc.what) {
			t.Errorf("%s %v: %v %q", tc.tool, tc.args, res.IsError, text(res))
		}
		e.findRecord(t, map[string]any{"kind": "filesystem", "tool": tc.tool, "result": "deny"})
	}
	if after, _ := os.ReadFile(e.policy); !bytes.Equal(before, after) {
		t.Error("the policy file changed")
	}
	for _, r := range e.records(t) {
		if r["forged"] != nil {
			t.Fatal("a forged record reached the audit log")
		}
	}
}

// Refusals made before the policy is asked are audited too: a zoned IPv6
// literal, and a symlink that leads out of its allowed directory.
func TestE2EEarlyRefusalsAudited(t *testing.T) {
	e := newEnv(t, "")
	if err := os.WriteFile(filepath.Join(e.dir, "outside.txt"), []byte("outside-secret-5"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside.txt", filepath.Join(e.workspace, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "fixture_fetch", map[string]any{"url": "http://[fe80::1%25eth0]:8080/"})
	if !res.IsError {
		t.Fatalf("zoned address fetched: %q", text(res))
	}
	rec := e.findRecord(t, map[string]any{"kind": "network", "tool": "fixture_fetch", "result": "deny"})
	if !strings.Contains(fmt.Sprint(rec["reasons"]), "not a valid host name or IP address") {
		t.Errorf("network record = %v", rec)
	}
	res = call(t, cs, "fixture_read_plain", map[string]any{"file": e.workspace + "/escape.txt"})
	if !res.IsError || strings.Contains(text(res), "outside-secret-5") || !strings.Contains(text(res), "leads out of its allowed directory") {
		t.Fatalf("escape: %v %q", res.IsError, text(res))
	}
	rec = e.findRecord(t, map[string]any{"kind": "filesystem", "tool": "fixture_read_plain", "result": "deny"})
	if !strings.Contains(fmt.Sprint(rec["reasons"]), "leads out") {
		t.Errorf("filesystem record = %v", rec)
	}
}

// startRawArgs is startRaw with extra serve flags.
func (e *env) startRawArgs(t *testing.T, args ...string) *rawServer {
	t.Helper()
	saved := e.extraArgs
	e.extraArgs = args
	defer func() { e.extraArgs = saved }()
	return e.startRaw(t)
}

// runBounded runs cmd and kills it if it outlives limit.
func runBounded(t *testing.T, cmd *exec.Cmd, limit time.Duration) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %s", cmd.Path, limit)
		return nil
	}
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesWithArgs lists the pids whose command line is exactly argv.
func processesWithArgs(argv ...string) []int {
	want := strings.Join(argv, "\x00") + "\x00"
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range entries {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil || pid <= 0 {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || string(data) != want {
			continue
		}
		// A zombie keeps its command line until it is reaped; it runs no
		// more.
		if stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// The audit log's fingerprint key is the server's too, also when the log
// shares its directory with the workspace: whoever holds the key can test
// guesses at redacted secrets.
func TestE2EAuditKeyOffLimits(t *testing.T) {
	dir := t.TempDir()
	e := &env{dir: dir, policy: filepath.Join(dir, "policy.yaml"), audit: filepath.Join(dir, "ws", "audit.log"), workspace: filepath.Join(dir, "ws")}
	if err := os.MkdirAll(e.workspace, 0o755); err != nil {
		t.Fatal(err)
	}
	e.write(t, "policy.yaml", fmt.Sprintf(`version: "1.0"
filesystem:
  allowed_paths: ["%s/**"]
audit:
  log_file: "%s"
tools:
  timeout: 10
  rate_limits: {default: 600}
`, e.workspace, e.audit))
	cs := e.connect(t, "2025-11-25")
	key := filepath.Join(e.workspace, "audit.key")
	before, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"fixture_read", map[string]any{"path": key}},
		{"fixture_write", map[string]any{"path": key, "text": strings.Repeat("A", 32)}},
		{"fixture_write", map[string]any{"path": filepath.Join(e.workspace, ".audit.key-planted"), "text": "x"}},
	} {
		res := call(t, cs, tc.tool, tc.args)
		if !res.IsError || !strings.Contains(text(res), "audit fingerprint key") {
			t.Errorf("%s %v: %v %q", tc.tool, tc.args, res.IsError, text(res))
		}
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Error("the key changed")
	}
	if res := call(t, cs, "fixture_write", map[string]any{"path": filepath.Join(e.workspace, "notes.txt"), "text": "fine"}); res.IsError {
		t.Errorf("a plain workspace write was refused: %q", text(res))
	}
}

// A client that stops reading cannot keep the server from shutting down:
// past the grace period the output is closed and the server exits.
func TestE2ESigtermWithUnreadOutput(t *testing.T) {
	e := newEnv(t, "")
	r := e.startRawArgs(t, "--shutdown-grace", "200ms")
	r.initialize()
	// Fill both pipes: requests whose answers nobody reads. The writes
	// block once the server stops reading; they end when it exits.
	go func() {
		line := `{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`
		for i := range 3000 {
			if _, err := fmt.Fprintf(r.stdin, line+"\n", i+1); err != nil {
				return
			}
		}
	}()
	time.Sleep(time.Second)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		t.Fatal("the server did not exit after SIGTERM while its output went unread")
	}
}

// Nor can a client that closes its input but never reads the answers:
// once the end of input is reported, the server gives up on the writes
// after a bound and exits.
func TestE2EEOFWithUnreadOutput(t *testing.T) {
	e := newEnv(t, "tools:\n  timeout: 2\n  rate_limits:\n    default: 100000\n")
	r := e.startRaw(t)
	r.initialize()
	// Fewer requests than the in-flight cap, so all of them and the end of
	// input are read; their answers (some 6 KB each) overflow the pipe.
	go func() {
		line := `{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`
		for i := range 200 {
			if _, err := fmt.Fprintf(r.stdin, line+"\n", i+1); err != nil {
				return
			}
		}
		r.stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		r.cmd.Process.Kill()
		t.Fatal("the server did not exit after the end of its input while its output went unread")
	}
}

// A client that sends and never reads holds back its own input once the
// answers waiting for it (here the SDK's, to resources/list) fill the
// in-flight cap: the server stops reading instead of queueing answers
// (and goroutines) without end. Read again, every request is answered.
func TestE2EUnreadOutputHoldsBackInput(t *testing.T) {
	e := newEnv(t, "")
	r := e.startRaw(t)
	r.initialize()
	const total = 12000
	sent := make(chan int, 1)
	go func() {
		n := 0
		for n < total {
			if _, err := fmt.Fprintf(r.stdin, `{"jsonrpc":"2.0","id":%d,"method":"resources/list"}`+"\n", n+1); err != nil {
				break
			}
			n++
			if n%30 == 0 {
				// Paced, so that the requests in flight alone never reach
				// the cap (256), only they and the answers waiting together.
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case <-sent:
			default:
			}
			sent <- n
		}
	}()
	// Wait until the writes stall (or all went through: the failure).
	last, still := 0, 0
	for still < 20 && last < total {
		select {
		case n := <-sent:
			last, still = n, 0
		case <-time.After(50 * time.Millisecond):
			still++
		}
	}
	// Two pipe buffers' worth (stdin's and stdout's, 64 KiB each, some
	// 45 bytes a line) and the reader's buffer: far below the total.
	if last >= total/2 {
		t.Fatalf("the server read %d of %d requests while its output went unread", last, total)
	}
	answered := 0
	for answered < total {
		m := r.recv()
		if m["id"] != nil {
			answered++
		}
	}
}

// An id the answer could not carry back as sent is refused (id null)
// and nothing runs for it, so no answer or audit record names another id.
func TestE2EUnfaithfulIDRefused(t *testing.T) {
	e := newEnv(t, "")
	r := e.startRaw(t)
	r.initialize()
	for _, id := range []string{`1.5`, `1e20`, `"\ud800"`} {
		r.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"list_categories","arguments":{}}}`)
		m := r.recv()
		if m["id"] != nil || !strings.Contains(fmt.Sprint(m["error"]), "could not carry back") {
			t.Errorf("id %s: %v, want -32600 with id null", id, m)
		}
	}
	r.send(`{"jsonrpc":"2.0","id":7,"method":"ping"}`)
	if m := r.recv(); m["id"] != float64(7) {
		t.Fatalf("after the refusals: %v", m)
	}
	for _, rec := range e.records(t) {
		if rec["kind"] == "tool_call" {
			t.Errorf("a refused request was decided: %v", rec)
		}
	}
}
