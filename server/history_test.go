package server

import (
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
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
