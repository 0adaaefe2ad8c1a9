package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// writeLog writes records through the audit logger the server uses, so
// they are redacted, capped and chained as in a real log.
func writeLog(t testing.TB, path string, recs []audit.Record) {
	t.Helper()
	sink, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(sink, nil)
	for _, r := range recs {
		if err := log.Log(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
}

func toolCall(tool, result string, args map[string]any, reasons ...string) audit.Record {
	return audit.Record{DecisionID: audit.NewID(), Kind: audit.KindToolCall, Path: "mcp/tools/decision", Tool: tool,
		Client: &audit.Client{Name: "claude-code", Version: "1"}, Result: result, Reasons: reasons,
		Input: map[string]any{"tool": tool, "arguments": args, "protocol_version": "2025-11-25"}}
}

// replayLog is yesterday: web searches and bugs allowed under the default
// policy, a connection, a file read, a command, a refusal.
func replayLog(workspace string) []audit.Record {
	return []audit.Record{
		toolCall("web_search", audit.ResultAllow, map[string]any{"query": "golang generics"}),
		toolCall("web_search", audit.ResultAllow, map[string]any{"query": "rego", "max_results": 20}),
		toolCall("add_bug", audit.ResultAllow, map[string]any{"title": "login fails with password=hunter2secret"}),
		toolCall("list_bugs", audit.ResultAllow, map[string]any{}),
		toolCall("nope", audit.ResultDeny, map[string]any{}, `tool "nope" is not registered`),
		{Kind: audit.KindNetwork, Path: "mcp/network/decision", Tool: "web_search", Result: audit.ResultAllow,
			Input: map[string]any{"phase": "resolve", "host": "lite.duckduckgo.com", "port": 443, "network": "tcp"}},
		{Kind: audit.KindFilesystem, Path: "mcp/filesystem/decision", Tool: "list_bugs", Result: audit.ResultAllow,
			Input: map[string]any{"path": workspace + "/notes.txt", "operation": "read"}},
		{Kind: audit.KindCommand, Path: "mcp/commands/decision", Tool: "x", Result: audit.ResultDeny,
			Input: map[string]any{"argv": []string{"ls"}, "cwd": "/"}},
		{Kind: audit.KindToolResult, Tool: "web_search", Status: audit.StatusOK},
	}
}

func TestPolicyReplay(t *testing.T) {
	dir := cliHome(t)
	ws := filepath.Join(dir, "ws")
	logFile := filepath.Join(dir, "audit.log")
	writeLog(t, logFile, replayLog(ws))

	// Under the policy the log was written with, nothing changes.
	same := writeFile(t, dir, "same.yaml", fmt.Sprintf(`version: "1.0"
network:
  allowed_endpoints:
    - host: lite.duckduckgo.com
      ports: [443]
  allow_dns: true
filesystem:
  allowed_paths: ["%s/"]
`, ws))
	code, out, errOut := runCLI(t, "policy", "replay", logFile, "--policy", same)
	if code != 0 || !strings.Contains(out, "would change: 0 (allow -> deny 0, deny -> allow 0); unchanged: 7") {
		t.Fatalf("same policy: exit %d\n%s%s", code, out, errOut)
	}

	// The new policy: limits on arguments, no file access, web_search
	// denied by name, and the unknown tool still unknown.
	writeFile(t, dir, "limits.rego", `package mcp.tools

deny contains sprintf("max_results %v is above 5", [input.arguments.max_results]) if {
	input.tool == "web_search"
	input.arguments.max_results > 5
}

deny contains "no passwords in bugs" if {
	input.tool == "add_bug"
	contains(input.arguments.title, "password")
}
`)
	newer := writeFile(t, dir, "new.yaml", `version: "1.0"
network:
  allowed_endpoints:
    - host: lite.duckduckgo.com
      ports: [443]
  allow_dns: true
rego:
  modules: [limits.rego]
`)
	code, out, errOut = runCLI(t, "policy", "replay", "--policy", newer, logFile)
	if code != exitError {
		t.Fatalf("new policy: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"replayed 7 decisions from 1 files under " + newer,
		"would change: 3 (allow -> deny 3, deny -> allow 0); unchanged: 4",
		"decided on redacted input: 1 (the log does not hold the original values; 1 of them would change)",
		"not replayed: 1 command (the executable's owner and inode are not recorded)",
		"not replayed: 1 tool_result (not a decision)",
		"1  allow -> deny  web_search           max_results 20 is above 5",
		"1  allow -> deny  list_bugs            path \"" + ws + "/notes.txt\" is not under filesystem.allowed_paths",
		logFile + ":3 ",
		"tool_call web_search: allow -> deny (max_results 20 is above 5)",
		"changes on redacted input (decided on what the log holds):",
		"tool_call add_bug: allow -> deny (no passwords in bugs)",
		"not the original input: /input/arguments/title (redacted)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("replay output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2secret") {
		t.Errorf("replay printed a secret the log redacted:\n%s", out)
	}

	// A log with a broken line is an error (2), named by file.
	bad := writeFile(t, dir, "bad.log", "{\"kind\":\"tool_call\",\n")
	if code, _, errOut := runCLI(t, "policy", "replay", bad); code != 0 || errOut != "" {
		// an unreadable line is counted, not fatal
		t.Errorf("broken line: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "policy", "replay", filepath.Join(dir, "missing.log")); code != exitUsage || !strings.Contains(errOut, "missing.log") {
		t.Errorf("missing file: exit %d %s", code, errOut)
	}
}

// BenchmarkReplay replays a generated log of 100,000 decision records
// (b.N times) and reports decisions per second of wall time, and per
// second of the process's CPU time (on a shared machine the wall rate
// says more about the neighbours than about replay).
func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	b.Setenv("HOME", dir)
	b.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	ws := filepath.Join(dir, "ws")
	logFile := filepath.Join(dir, "audit.log")
	const n = 100_000
	base := replayLog(ws)[:7]
	recs := make([]audit.Record, 0, n)
	for i := range n {
		r := base[i%len(base)]
		if r.Kind == audit.KindToolCall {
			in := r.Input.(map[string]any)
			args := map[string]any{"query": fmt.Sprintf("query %d", i)}
			r.Input = map[string]any{"tool": in["tool"], "arguments": args, "protocol_version": "2025-11-25"}
		}
		recs = append(recs, r)
	}
	writeLog(b, logFile, recs)
	pol := filepath.Join(dir, "p.yaml")
	os.WriteFile(pol, []byte("rego:\n  modules: [r.rego]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "r.rego"), []byte("package mcp.tools\n\ndeny contains \"no\" if input.arguments.query == \"query 7\"\n"), 0o644)
	chk, err := checkPolicy(context.Background(), pol)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	decided := 0
	for range b.N {
		r := &replayer{eng: chk.eng, tools: chk.tools}
		rep, err := r.replay(context.Background(), []string{logFile})
		if err != nil {
			b.Fatal(err)
		}
		decided += rep.replayed
	}
	b.ReportMetric(float64(decided)/time.Since(start).Seconds(), "decisions/s")
	b.ReportMetric(float64(decided)/(cpuTime()-cpu0).Seconds(), "decisions/cpu-s")
}
