//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A dry-run policy decides the guards' decisions too: a path access and
// a command it would deny run (the enforced policy allows them), and
// their records carry the would-be denial, marked not enforced.
func TestE2EDryRunGuards(t *testing.T) {
	e := newEnv(t, "commands:\n  allowed: [\"true\"]\ndry_run:\n  modules: [candidate.rego]\n")
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

	// A command the dry-run policy allows as the enforced one does.
	if res, _, code, stderr := sbRun(t, rc.cs, "true"); res.IsError || code != 0 {
		t.Fatalf("true: exit %d %s %s", code, text(res), stderr)
	}
	rec = e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run"})
	if dr, _ := rec["dry_run"].(map[string]any); rec["result"] != "allow" || dr == nil || dr["allow"] != true || dr["enforced"] != false {
		t.Fatalf("command record %v, dry_run %v", rec["result"], rec["dry_run"])
	}
}
