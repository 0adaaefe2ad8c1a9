package main

import (
	"strings"
	"testing"
)

// A dry-run policy decides every call next to the enforced one: its
// would-be denial is in the call's audit record, marked not enforced,
// and the call is answered by the enforced policy alone. The start-up
// says so loudly.
func TestE2EDryRun(t *testing.T) {
	for _, tc := range []struct {
		name, section string
		files         map[string]string
		reason        string
	}{
		{
			name:    "modules",
			section: "dry_run:\n  modules: [candidate.rego]\n",
			files: map[string]string{"candidate.rego": `package mcp.tools

deny contains "categories are going away" if input.tool == "list_categories"
`},
			reason: "categories are going away",
		},
		{
			name:    "policy",
			section: "dry_run:\n  policy: candidate.yaml\n",
			files: map[string]string{"candidate.yaml": `version: "1.0"
tools:
  denied: ["list_categories"]
`},
			reason: `tool "list_categories" is denied by tools.denied pattern "list_categories"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.section)
			for name, content := range tc.files {
				e.write(t, name, content)
			}
			rc := e.connectReload(t, "2025-11-25")
			res := call(t, rc.cs, "list_categories", map[string]any{})
			if res.IsError {
				t.Fatalf("the dry-run policy was enforced: %s", text(res))
			}
			rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories"})
			if rec["result"] != "allow" {
				t.Fatalf("enforced result = %v", rec["result"])
			}
			dr, _ := rec["dry_run"].(map[string]any)
			if dr == nil || dr["enforced"] != false || dr["allow"] != false {
				t.Fatalf("dry_run = %v", rec["dry_run"])
			}
			if reasons, _ := dr["reasons"].([]any); len(reasons) != 1 || reasons[0] != tc.reason {
				t.Fatalf("dry_run reasons = %v, want [%s]", dr["reasons"], tc.reason)
			}
			// A call both allow: the dry run says so too.
			call(t, rc.cs, "search_tools", map[string]any{"query": "bug"})
			rec = e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "search_tools"})
			if dr, _ := rec["dry_run"].(map[string]any); dr == nil || dr["allow"] != true || dr["enforced"] != false {
				t.Fatalf("dry_run of an allowed call = %v", rec["dry_run"])
			}
			if !strings.Contains(rc.stderr.String(), "DRY RUN") || !strings.Contains(rc.stderr.String(), "NEVER enforced") {
				t.Error("start-up did not warn of the dry run")
			}
		})
	}
}

// Without a dry_run section no record carries one.
func TestE2EDryRunAbsent(t *testing.T) {
	e := newEnv(t, "")
	rc := e.connectReload(t, "2025-11-25")
	call(t, rc.cs, "list_categories", map[string]any{})
	// The call's own record is there, and it carries no dry_run.
	if rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "list_categories"}); rec == nil {
		t.Fatal("no tool_call record of the call")
	}
	for _, r := range e.records(t) {
		if _, ok := r["dry_run"]; ok {
			t.Fatalf("record with dry_run without a dry-run policy: %v", r)
		}
	}
}
