package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// Budget for the audit records of refusals a client can repeat at no
// cost to itself (unknown tool names, invalid arguments, rate-limited
// calls): each key may write budgetBurst records at once and
// budgetPerSecond after that. Past the budget the call is still refused,
// and its record is counted instead of written: one summary record per
// key and interval says how many were coalesced.
const (
	budgetBurst     = 30
	budgetPerSecond = 1.0
	summaryInterval = 10 * time.Second
)

// budgetKey names a bucket: validation and rate-limit refusals per tool,
// unknown tool names in one shared bucket (their names are the
// attacker's to vary).
type budgetKey struct{ kind, tool string }

var unknownToolKey = budgetKey{kind: "unknown_tool"}

type bucket struct {
	tokens     float64
	last       time.Time
	suppressed int
	first      time.Time // first suppressed refusal since the last summary
	lastSeen   time.Time
	reason     string // a sample of what was suppressed
}

// denialBudget coalesces the records of repeated refusals.
type denialBudget struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets map[budgetKey]*bucket
}

func newDenialBudget(now func() time.Time) *denialBudget {
	return &denialBudget{now: now, buckets: map[budgetKey]*bucket{}}
}

// admit reports whether a refusal under k may write its own record. When
// it may and earlier ones were suppressed, summary is their record, to be
// written first.
func (b *denialBudget) admit(k budgetKey, reason string) (ok bool, summary *audit.Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	bk := b.buckets[k]
	if bk == nil {
		bk = &bucket{tokens: budgetBurst, last: now}
		b.buckets[k] = bk
	}
	bk.tokens = min(budgetBurst, bk.tokens+now.Sub(bk.last).Seconds()*budgetPerSecond)
	bk.last = now
	if bk.tokens >= 1 {
		bk.tokens--
		return true, b.summaryLocked(k, bk)
	}
	if bk.suppressed == 0 {
		bk.first = now
	}
	bk.suppressed++
	bk.lastSeen = now
	bk.reason = reason
	return false, nil
}

// due returns the summaries of keys whose suppressed refusals are older
// than the interval, or of every key with any when all is set.
func (b *denialBudget) due(all bool) []audit.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []audit.Record
	for k, bk := range b.buckets {
		if bk.suppressed > 0 && (all || now.Sub(bk.first) >= summaryInterval) {
			out = append(out, *b.summaryLocked(k, bk))
		}
	}
	return out
}

func (b *denialBudget) summaryLocked(k budgetKey, bk *bucket) *audit.Record {
	if bk.suppressed == 0 {
		return nil
	}
	r := &audit.Record{
		DecisionID: audit.NewID(),
		Kind:       audit.KindSummary,
		Tool:       k.tool,
		Result:     audit.ResultDeny,
		Reasons: []string{fmt.Sprintf("%d more %s refusals were not recorded one by one (over the budget of %d at once, %.0f per second); the last said: %s",
			bk.suppressed, k.kind, budgetBurst, budgetPerSecond, bk.reason)},
		Count:    int64(bk.suppressed),
		WindowNS: bk.lastSeen.Sub(bk.first).Nanoseconds(),
		Input: map[string]any{
			"refusal": k.kind,
			"from":    bk.first.UTC().Format(time.RFC3339Nano),
			"to":      bk.lastSeen.UTC().Format(time.RFC3339Nano),
		},
	}
	bk.suppressed = 0
	return r
}
