package main

import (
	"bytes"
	"container/list"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// Replaying input.session. The server offers each tools decision the
// history of its session's earlier decisions (engine.SessionLog, fed by
// every decision record as it is written). Replay rebuilds it the same
// way, reading the records in order, when the policy replayed may read
// it (a user module refers to input.session, or to input as a whole).
//
// The history the server saw is in the records only when the log holds
// every one of the session's earlier decisions, in the order the server
// saw them. Where that cannot be known, the call is not replayed and is
// counted as "not replayable: uses session history", never guessed:
//   - the records read do not start with a new log (an audit_genesis
//     record with no prev_hash): a session seen first may have begun
//     before them;
//   - the hash chain breaks (a record missing, a file left out), or a new
//     log starts while sessions were open;
//   - a decision of the same session was recorded after the call arrived
//     (calls in flight together): whether the server's snapshot, taken
//     on arrival, held it is not recorded; the arrival is the record's
//     timestamp less its duration, so without duration_ns
//     (audit.include) any earlier decision of the session makes it
//     unknowable;
//   - as many other sessions as the server keeps
//     (engine.DefaultHistoryKeep) were active since the session's last
//     decision: the server may have forgotten its history, depending on
//     which process (the log may have several writers) held which.
//   - refusals past the audit budget were counted in a history but
//     written only as an audit_summary record (which says from when, but
//     not for which calls): from the summary's "from" on, calls of the
//     summary's session (of every session, for a summary that names
//     none) are not replayable.

// usesSession reports whether modules may read input.session: a ref to
// input.session, to input with a key that is not a constant, or to
// input itself. A module that does not parse counts as reading it.
func usesSession(modules map[string]string) bool {
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1}
	for name, src := range modules {
		m, err := ast.ParseModuleWithOpts(name, src, opts)
		if err != nil {
			return true
		}
		found := false
		var visit func(x any) bool
		visit = func(x any) bool {
			if found {
				return true
			}
			t, ok := x.(*ast.Term)
			if !ok {
				return false
			}
			switch v := t.Value.(type) {
			case ast.Ref:
				if v[0].Value.Compare(ast.InputRootDocument.Value) == 0 {
					if len(v) == 1 {
						found = true
					} else if k, ok := v[1].Value.(ast.String); !ok || k == "session" {
						found = true
					}
				}
				parts := v[1:] // a var at the head is no bare var
				if _, ok := v[0].Value.(ast.Var); !ok {
					parts = v // a call's result, say
				}
				for _, k := range parts {
					ast.NewGenericVisitor(visit).Walk(k)
				}
				return true
			case ast.Var:
				found = found || v.Equal(ast.InputRootDocument.Value)
			}
			return false
		}
		ast.NewGenericVisitor(visit).Walk(m)
		if found {
			return true
		}
	}
	return false
}

// sessionFields are what the history needs of a record.
type sessionFields struct {
	Kind       string    `json:"kind"`
	SessionID  string    `json:"session_id"`
	Tool       string    `json:"tool"`
	Result     string    `json:"result"`
	Timestamp  time.Time `json:"timestamp"`
	DurationNS *int64    `json:"duration_ns"`
	PrevHash   *string   `json:"prev_hash"`
	Hash       string    `json:"hash"`
}

// sessionTracker rebuilds the sessions' histories from the records, in
// the order they were written.
type sessionTracker struct {
	log      *engine.SessionLog
	last     map[string]time.Time // the last decision of each session
	unknown  map[string]string    // sessions whose history is not whole, and why
	complete bool                 // the records read so far start a new log, unbroken
	lastHash string
	// recent orders the sessions by their last decision, the latest
	// first; at holds each session's element.
	recent *list.List
	at     map[string]*list.Element
	// budget is when refusals past the audit budget began to be
	// counted unrecorded, by session ("": any session).
	budget map[string]time.Time
}

// replayKeep is how many sessions the rebuilt histories keep: more than
// the server does, so that what it may have forgotten is found by
// recency (forgotten) rather than lost here.
const replayKeep = 16 * engine.DefaultHistoryKeep

func newSessionTracker() *sessionTracker {
	return &sessionTracker{log: engine.NewSessionLog(0, replayKeep), last: map[string]time.Time{}, unknown: map[string]string{},
		recent: list.New(), at: map[string]*list.Element{}, budget: map[string]time.Time{}}
}

// summaryMark is how an audit_summary line starts to be told apart.
var summaryMark = []byte(`"kind":"` + audit.KindSummary + `"`)

// summary notes an audit_summary record (read ahead of the decisions: it
// is written after the refusals it counts).
func (t *sessionTracker) summary(raw []byte) {
	if !bytes.Contains(raw, summaryMark) {
		return
	}
	var f struct {
		Kind      string `json:"kind"`
		SessionID string `json:"session_id"`
		Input     struct {
			From time.Time `json:"from"`
		} `json:"input"`
	}
	if json.Unmarshal(raw, &f) != nil || f.Kind != audit.KindSummary {
		return
	}
	if was, ok := t.budget[f.SessionID]; !ok || f.Input.From.Before(was) {
		t.budget[f.SessionID] = f.Input.From
	}
}

// unrecorded reports whether refusals of sid may have been counted
// unrecorded before at.
func (t *sessionTracker) unrecorded(sid string, at time.Time) bool {
	for _, k := range []string{sid, ""} {
		if from, ok := t.budget[k]; ok && from.Before(at) {
			return true
		}
	}
	return false
}

// forgotten reports whether the server may have forgotten sid's history:
// as many other sessions as it keeps had a decision since sid's last.
func (t *sessionTracker) forgotten(sid string) bool {
	el, ok := t.at[sid]
	if !ok {
		return false
	}
	n := 0
	for e := t.recent.Front(); e != nil && e != el; e = e.Next() {
		if n++; n >= engine.DefaultHistoryKeep {
			return true
		}
	}
	return false
}

// touch makes sid the session with the latest decision.
func (t *sessionTracker) touch(sid string) {
	if el, ok := t.at[sid]; ok {
		t.recent.MoveToFront(el)
		return
	}
	t.at[sid] = t.recent.PushFront(sid)
}

// Reasons a call is not replayable.
const (
	whyBefore    = "the session began before the records read"
	whyChain     = "a record of the session is missing (the hash chain breaks)"
	whyRestart   = "a new log began while the session was open"
	whyInFlight  = "another decision of the session was recorded while the call was in flight"
	whyNoTime    = "the call's duration is not recorded (audit.include)"
	whyBudget    = "refusals past the audit budget counted in its history were recorded only as a summary"
	whyForgotten = "as many other sessions as the server keeps were active since its last decision"
)

// history reads one record: for a tool call, it returns the history its
// session had when the call arrived, or why that is unknown; every
// decision then joins its session's history.
func (t *sessionTracker) history(raw []byte) (h *engine.SessionHistory, unknown string) {
	var f sessionFields
	if json.Unmarshal(raw, &f) != nil {
		return nil, ""
	}
	t.chain(f)
	switch f.Kind {
	case audit.KindToolCall, audit.KindValidation, audit.KindRateLimit,
		audit.KindNetwork, audit.KindFilesystem, audit.KindCommand:
	default:
		return nil, ""
	}
	sid := f.SessionID
	if sid == "" {
		return nil, "" // the server keeps no history without a session
	}
	last, seen := t.last[sid]
	if !seen && !t.complete {
		t.unknown[sid] = whyBefore
	}
	if seen && t.unknown[sid] == "" && t.forgotten(sid) {
		t.unknown[sid] = whyForgotten
	}
	if f.Kind == audit.KindToolCall {
		arrival := f.Timestamp
		if f.DurationNS != nil {
			arrival = arrival.Add(-time.Duration(*f.DurationNS))
		}
		switch {
		case t.unknown[sid] != "":
			unknown = t.unknown[sid]
		case t.unrecorded(sid, arrival):
			unknown = whyBudget
		case seen && f.DurationNS == nil:
			unknown = whyNoTime
		case seen && f.DurationNS != nil && !last.Before(arrival):
			unknown = whyInFlight
		default:
			h = t.log.History(sid)
		}
	}
	t.log.Record(sid, engine.SessionEvent{Tool: f.Tool, Kind: f.Kind, Result: f.Result})
	t.last[sid] = f.Timestamp
	t.touch(sid)
	return h, unknown
}

// chain follows the hash chain: the history is whole only from a new
// log on, while no record is missing.
func (t *sessionTracker) chain(f sessionFields) {
	switch {
	case f.PrevHash == nil:
		t.lose(whyChain)
		return
	case f.Kind == audit.KindGenesis && *f.PrevHash == "":
		for _, sid := range slices.Sorted(maps.Keys(t.last)) {
			if t.unknown[sid] == "" {
				t.unknown[sid] = whyRestart
			}
		}
		t.complete = true
	case *f.PrevHash != t.lastHash:
		t.lose(whyChain)
	}
	t.lastHash = f.Hash
}

// lose marks every session known as not whole, and those to come.
func (t *sessionTracker) lose(why string) {
	t.complete = false
	for sid := range t.last {
		if t.unknown[sid] == "" {
			t.unknown[sid] = why
		}
	}
}

// redactedHistory names the redacted tool names in h.
func redactedHistory(h *engine.SessionHistory) []string {
	if h == nil {
		return nil
	}
	for _, ev := range h.Events {
		if strings.Contains(ev.Tool, "[REDACTED") {
			return []string{"/input/session/history (a tool name was redacted)"}
		}
	}
	return nil
}
