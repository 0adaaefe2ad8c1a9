package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
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

// Refusals past the denial budget are summarised in the audit log, not
// written one by one, but each still counts in input.session: a client
// that floods refusals cannot keep a rule on counts from seeing them.
// counts is every decision; history is bounded, and dropped says how many
// decisions it does not list.
func TestE2ESessionCountsPastTheBudget(t *testing.T) {
	const flood = 45 // past the burst of 30 for unknown tool names
	e := newEnv(t, "rego:\n  modules: [counts.rego]\n")
	e.write(t, "counts.rego", `package mcp.tools

deny contains sprintf("session so far: %d denied, %d listed, %d dropped", [input.session.counts.deny, count(input.session.history), input.session.dropped]) if {
	input.tool == "list_categories"
	input.session.counts.deny >= 45
}
`)
	cs := e.connect(t, "2025-11-25")
	for i := range flood {
		if res := call(t, cs, fmt.Sprintf("no_such_tool_%d", i), map[string]any{}); !res.IsError {
			t.Fatalf("unknown tool %d was allowed: %s", i, text(res))
		}
	}
	res := call(t, cs, "list_categories", map[string]any{})
	var denied, listed, dropped int
	if _, err := fmt.Sscanf(text(res), "call to \"list_categories\" denied by policy: session so far: %d denied, %d listed, %d dropped", &denied, &listed, &dropped); !res.IsError || err != nil {
		t.Fatalf("list_categories after %d refusals: isError=%v %s (%v)", flood, res.IsError, text(res), err)
	}
	if denied != flood || listed+dropped != flood {
		t.Errorf("input.session saw %d denied, %d listed, %d dropped; want %d = listed + dropped", denied, listed, dropped, flood)
	}
	e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories", "result": "deny"})
	cs.Close() // the server writes the summary of what it coalesced as it exits

	written, summarised := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		written, summarised = 0, 0
		for _, r := range e.records(t) {
			name, _ := r["tool"].(string)
			switch {
			case r["kind"] == "tool_call" && r["result"] == "deny" && strings.HasPrefix(name, "no_such_tool_"):
				written++
			case r["kind"] == "audit_summary":
				n, _ := r["count"].(float64)
				summarised += int(n)
			}
		}
		if written+summarised == flood || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if written >= flood || written+summarised != flood {
		t.Errorf("audit log: %d refusals written one by one, %d summarised; want fewer than %d written, %d in all", written, summarised, flood, flood)
	}
}

// TestE2EReplaySessionHistory records a session whose last call a rule
// on input.session denied, then replays the real audit log: under the
// same policy nothing changes (the history is rebuilt from the records);
// without the rule, that call is the one change.
func TestE2EReplaySessionHistory(t *testing.T) {
	const modules = "rego:\n  modules: [session.rego]\n"
	e := newEnv(t, modules)
	e.write(t, "session.rego", `package mcp.tools

deny contains "no list_categories after a denied file read in this session" if {
	input.tool == "list_categories"
	some event in input.session.history
	event.kind == "filesystem"
	event.result == "deny"
}
`)
	cs := e.connect(t, "2025-11-25")
	if res := call(t, cs, "list_categories", map[string]any{}); res.IsError {
		t.Fatalf("list_categories before any denial: %s", text(res))
	}
	if res := call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/.env"}); !res.IsError {
		t.Fatalf("reading .env was allowed: %s", text(res))
	}
	if res := call(t, cs, "list_categories", map[string]any{}); !res.IsError {
		t.Fatalf("list_categories after a denied read was allowed: %s", text(res))
	}
	cs.Close()
	e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories", "result": "deny"})

	code, out, errOut := runBinary(t, e, "policy", "replay", e.audit, "--policy", e.policy)
	if code != 0 || !strings.Contains(out, "would change: 0 ") || strings.Contains(out, "not replay") && strings.Contains(out, "session") {
		t.Fatalf("same policy: exit %d\n%s%s", code, out, errOut)
	}
	pol, err := os.ReadFile(e.policy)
	if err != nil {
		t.Fatal(err)
	}
	without := e.write(t, "without.yaml", strings.Replace(string(pol), modules, "", 1))
	code, out, errOut = runBinary(t, e, "policy", "replay", e.audit, "--policy", without)
	if code != 1 || !strings.Contains(out, "deny -> allow 1)") || !strings.Contains(out, "list_categories") {
		t.Fatalf("without the rule: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("replay without the rule:\n%s", out)
}
