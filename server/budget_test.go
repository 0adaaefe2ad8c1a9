package server

import (
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

func TestDenialBudget(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := newDenialBudget(func() time.Time { return now })
	k := budgetKey{kind: audit.KindValidation, tool: "echo"}
	for i := range budgetBurst {
		if ok, sum := b.admit(k, "bad"); !ok || sum != nil {
			t.Fatalf("refusal %d: admitted=%v summary=%v", i, ok, sum)
		}
	}
	for i := range 100 {
		if ok, _ := b.admit(k, "bad"); ok {
			t.Fatalf("refusal %d past the burst was admitted", budgetBurst+i)
		}
	}
	// Another key has a budget of its own.
	if ok, _ := b.admit(unknownToolKey, "x"); !ok {
		t.Fatal("the unknown-tool bucket shares the validation budget")
	}
	if got := b.due(false); len(got) != 0 {
		t.Fatalf("summaries before the interval: %+v", got)
	}
	now = now.Add(summaryInterval)
	sums := b.due(false)
	if len(sums) != 1 || sums[0].Kind != audit.KindSummary || sums[0].Tool != "echo" || sums[0].Count != 100 {
		t.Fatalf("summaries = %+v", sums)
	}
	if got := b.due(true); len(got) != 0 {
		t.Fatalf("a summary was written twice: %+v", got)
	}
	// Refilled: the next refusal is recorded again.
	if ok, sum := b.admit(k, "bad"); !ok || sum != nil {
		t.Fatalf("after refill: admitted=%v summary=%v", ok, sum)
	}
	// Suppressed refusals surface in the next admitted record's summary.
	for range budgetBurst + 5 {
		b.admit(k, "bad")
	}
	now = now.Add(2 * time.Second)
	ok, sum := b.admit(k, "bad")
	if !ok || sum == nil || sum.Count == 0 {
		t.Fatalf("admitted=%v summary=%+v", ok, sum)
	}
}
