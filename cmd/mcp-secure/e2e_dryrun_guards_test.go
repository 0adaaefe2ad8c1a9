//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A dry-run policy decides the guards' decisions too: a path access, a
// connection and a command it would deny run (the enforced policy allows
// them), and their records carry the would-be decision, marked not
// enforced.
func TestE2EDryRunGuards(t *testing.T) {
	srv, port := searchFixture(t)
	e := newEnvNet(t, loopbackNetwork(unusedPort(t)), "commands:\n  allowed: [\"true\"]\ndry_run:\n  modules: [candidate.rego, candidate_net.rego]\n")
	e.vars = []string{"MCP_SECURE_WEBSEARCH_URL=" + srv.URL + "/lite/"}
	netReason := fmt.Sprintf("searches on port %d are going away", port)
	e.write(t, "candidate_net.rego", fmt.Sprintf(`package mcp.network

deny contains %q if {
	input.phase == "dial"
	input.port == %d
}
`, netReason, port))
	e.write(t, "candidate.rego", `package mcp.filesystem

deny contains "notes are going read-only" if {
	endswith(input.path, "/notes.txt")
	input.operation == "write"
}
`)
	rc := e.connectReload(t, "2025-11-25")
	notes := filepath.Join(e.workspace, "notes.txt")
	if res := call(t, rc.cs, "fixture_write", map[string]any{"path": notes, "text": "kept"}); res.IsError {
		t.Fatalf("the dry-run policy was enforced: %s", text(res))
	}
	if got, _ := os.ReadFile(notes); string(got) != "kept" {
		t.Fatalf("the write did not happen: %q", got)
	}
	rec := e.findRecord(t, map[string]any{"kind": "filesystem", "tool": "fixture_write"})
	if rec["result"] != "allow" {
		t.Fatalf("enforced filesystem result = %v", rec["result"])
	}
	dr, _ := rec["dry_run"].(map[string]any)
	if dr == nil || dr["enforced"] != false || dr["allow"] != false {
		t.Fatalf("filesystem dry_run = %v", rec["dry_run"])
	}
	if reasons, _ := dr["reasons"].([]any); len(reasons) != 1 || reasons[0] != "notes are going read-only" {
		t.Fatalf("filesystem dry_run reasons = %v", dr["reasons"])
	}

	// A connection the dry-run policy would refuse is made: the search
	// answers, and the network record carries the would-be denial.
	res := call(t, rc.cs, "web_search", map[string]any{"query": "golang generics", "max_results": 1})
	if res.IsError || !strings.Contains(text(res), "https://go.dev/doc/tutorial/generics") {
		t.Fatalf("web_search (the dry-run policy was enforced?): %q", text(res))
	}
	rec = e.findRecord(t, map[string]any{"kind": "network", "tool": "web_search"})
	in, _ := rec["input"].(map[string]any)
	if rec["result"] != "allow" || in["ip"] != "127.0.0.1" || in["port"] != float64(port) {
		t.Fatalf("enforced network record = %v", rec)
	}
	dr, _ = rec["dry_run"].(map[string]any)
	if dr == nil || dr["enforced"] != false || dr["allow"] != false {
		t.Fatalf("network dry_run = %v", rec["dry_run"])
	}
	if reasons, _ := dr["reasons"].([]any); len(reasons) != 1 || reasons[0] != netReason {
		t.Fatalf("network dry_run reasons = %v", dr["reasons"])
	}

	// A command the dry-run policy allows as the enforced one does.
	if res, _, code, stderr := sbRun(t, rc.cs, "true"); res.IsError || code != 0 {
		t.Fatalf("true: exit %d %s %s", code, text(res), stderr)
	}
	rec = e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run"})
	if dr, _ := rec["dry_run"].(map[string]any); rec["result"] != "allow" || dr == nil || dr["allow"] != true || dr["enforced"] != false {
		t.Fatalf("command record %v, dry_run %v", rec["result"], rec["dry_run"])
	}
}
