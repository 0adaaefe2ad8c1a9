package main

import (
	"os/exec"
	"testing"
)

// TestE2ERecordsBeforeAnswers: the calls the server answers from its
// reader (discovery tools, unknown tools) are decided and recorded before
// their answer: when the client has an answer, the log already holds the
// call's decision and, for an allowed call, its result record next to it.
// The log verifies.
func TestE2ERecordsBeforeAnswers(t *testing.T) {
	e := newEnv(t, "")
	cs := e.connect(t, "2025-11-25")
	for i := range 5 {
		if res := call(t, cs, "list_categories", map[string]any{}); res.IsError {
			t.Fatalf("list_categories: %s", text(res))
		}
		recs := e.records(t)
		var calls, results int
		for j, r := range recs {
			if r["tool"] != "list_categories" {
				continue
			}
			switch r["kind"] {
			case "tool_call":
				calls++
				if r["result"] != "allow" {
					t.Errorf("call %d: decision %v", i, r)
				}
				if j+1 == len(recs) || recs[j+1]["kind"] != "tool_result" || recs[j+1]["decision_id"] != r["decision_id"] {
					t.Errorf("call %d: the decision record is not followed by its result record", i)
				}
			case "tool_result":
				results++
			}
		}
		if calls != i+1 || results != i+1 {
			t.Fatalf("after %d answers: %d decision and %d result records", i+1, calls, results)
		}
		if res := call(t, cs, "no_such_tool", map[string]any{}); !res.IsError {
			t.Fatalf("unknown tool allowed: %s", text(res))
		}
		rec := e.findRecord(t, map[string]any{"tool": "no_such_tool", "kind": "tool_call"})
		if rec["result"] != "deny" {
			t.Errorf("unknown tool record %v", rec)
		}
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binPath, "audit", "verify", e.audit).CombinedOutput(); err != nil {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
}
