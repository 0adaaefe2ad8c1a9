package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// Refusals past the denial budget are not written one by one, but every
// one of them counts in input.session: a client cannot blind a rule on
// counts by flooding refusals.
func TestHistoryCountsRefusalsPastTheBudget(t *testing.T) {
	h := newHarnessAudit(t, 5*time.Second, func(a Auditor) Auditor { return NewHistory(a, nil) })
	const flood = budgetBurst + 20
	for i := range flood {
		if res := h.call(t, "echo", map[string]any{"msg": 5}); !res.IsError {
			t.Fatalf("invalid call %d was allowed", i)
		}
	}
	written := 0
	for _, r := range h.aud.all() {
		if r.Kind == audit.KindValidation {
			written++
		}
	}
	if written >= flood {
		t.Fatalf("%d of %d refusals written one by one: the budget was not passed", written, flood)
	}
	if res := h.call(t, "echo", map[string]any{"msg": "hi"}); res.IsError {
		t.Fatalf("valid call: %s", resultText(res))
	}
	h.dec.mu.Lock()
	in := h.dec.inputs[len(h.dec.inputs)-1].(ast.Object)
	h.dec.mu.Unlock()
	session := in.Get(ast.StringTerm("session")).Value.(ast.Object)
	number := func(v ast.Value) int {
		n, _ := v.(ast.Number).Int()
		return n
	}
	deny := number(session.Get(ast.StringTerm("counts")).Value.(ast.Object).Get(ast.StringTerm("deny")).Value)
	listed := session.Get(ast.StringTerm("history")).Value.(*ast.Array).Len()
	dropped := number(session.Get(ast.StringTerm("dropped")).Value)
	if deny != flood || listed+dropped != flood || listed > written {
		t.Errorf("input.session: counts.deny %d, %d listed, dropped %d; want deny %d = listed + dropped, listed <= %d written",
			deny, listed, dropped, flood, written)
	}
}

// TestStagedRecordIsHistoryOnceWritten: a record kept in a stage becomes
// its session's history only when the stage's Commit writes it; one that
// a failed Commit never wrote is not history, as a failed write is not
// (the calls of the group are refused).
func TestStagedRecordIsHistoryOnceWritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	alog := audit.New(sink, nil)
	defer alog.Close()
	h := NewHistory(alog, nil)
	events := func() []engine.SessionEvent {
		if sh := h.log.History("s"); sh != nil {
			return sh.Events
		}
		return nil
	}
	rec := func(tool string) audit.Record {
		return audit.Record{SessionID: "s", Kind: audit.KindToolCall, Tool: tool, Result: audit.ResultAllow}
	}

	var st audit.Stage
	ctx := audit.WithStage(t.Context(), &st)
	if err := h.Log(ctx, rec("one")); err != nil {
		t.Fatal(err)
	}
	if err := h.LogBatch(ctx, []audit.Record{rec("two"), {SessionID: "s", Kind: audit.KindToolResult, Tool: "two"}}); err != nil {
		t.Fatal(err)
	}
	if got := events(); len(got) != 0 {
		t.Fatalf("history before the stage is written: %v", got)
	}
	if err := st.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := events(); len(got) != 2 || got[0].Tool != "one" || got[1].Tool != "two" {
		t.Fatalf("history once written: %v, want one then two", got)
	}

	// The log moved away: the next Commit fails, and leaves no history.
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := h.Log(ctx, rec("three")); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(t.Context()); err == nil {
		t.Fatal("Commit with the log moved away: no error")
	}
	if got := events(); len(got) != 2 {
		t.Errorf("history after a failed Commit: %v, want only one and two", got)
	}
}
