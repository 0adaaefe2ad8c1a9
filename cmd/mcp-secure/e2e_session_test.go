package main

import (
	"strings"
	"testing"
)

// A rule can read the session's earlier decisions (input.session): here,
// no list_categories after a denied file read in the same session. The
// file read is denied by the filesystem door while fixture_read runs.
func TestE2ESessionHistory(t *testing.T) {
	e := newEnv(t, "rego:\n  modules: [session.rego]\n")
	e.write(t, "session.rego", `package mcp.tools

deny contains "no list_categories after a denied file read in this session" if {
	input.tool == "list_categories"
	some event in input.session.history
	event.kind == "filesystem"
	event.result == "deny"
}
`)
	rc := e.connectReload(t, "2025-11-25")
	if res := call(t, rc.cs, "list_categories", map[string]any{}); res.IsError {
		t.Fatalf("list_categories before any denial: %s", text(res))
	}
	if res := call(t, rc.cs, "fixture_read", map[string]any{"path": e.workspace + "/.env"}); !res.IsError {
		t.Fatalf("reading .env was allowed: %s", text(res))
	}
	e.findRecord(t, map[string]any{"kind": "filesystem", "tool": "fixture_read", "result": "deny"})
	res := call(t, rc.cs, "list_categories", map[string]any{})
	if !res.IsError || !strings.Contains(text(res), "no list_categories after a denied file read") {
		t.Fatalf("list_categories after a denied read: isError=%v %s", res.IsError, text(res))
	}
	rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories", "result": "deny"})
	if reasons, _ := rec["reasons"].([]any); len(reasons) != 1 {
		t.Fatalf("reasons = %v", rec["reasons"])
	}

	// History is per session and kept in memory only: a new server's
	// session starts with none.
	other := e.connectReload(t, "2025-11-25")
	if res := call(t, other.cs, "list_categories", map[string]any{}); res.IsError {
		t.Fatalf("a new session inherited the history: %s", text(res))
	}
}
