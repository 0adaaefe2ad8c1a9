package engine

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The session input: what a session's earlier decisions were, offered to
// the tools decision point as input.session, so a rule can refuse a call
// for what came before it in the same session ("no web_search after a
// denied file read").

// Default bounds of a [SessionLog].
const (
	DefaultHistoryLen  = 32
	DefaultHistoryKeep = 256
)

// SessionEvent is one earlier decision of a session: the tool whose call
// it was taken for, its kind (the audit record's: tool_call, validation,
// rate_limit, network, filesystem, command) and its result (allow, deny,
// error).
type SessionEvent struct {
	Tool, Kind, Result string
}

// SessionHistory is input.session: the last events of a session, oldest
// first, and the counts of all its decisions by result. Every decision
// counts, listed or not: the counts always sum to len(Events) + Dropped.
type SessionHistory struct {
	Events []SessionEvent
	Counts map[string]int64 // by result: allow, deny, error
	// Dropped counts the decisions not in Events: those the bounded list
	// lost to newer ones, and those never listed (Count).
	Dropped int64
	// terms are Events as documents, built once when each was recorded
	// (immutable, shared); nil: built by Value.
	terms []*ast.Term
}

func (ev SessionEvent) term() *ast.Term {
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("tool"), ast.StringTerm(ev.Tool)),
		ast.Item(ast.InternedTerm("kind"), ast.StringTerm(ev.Kind)),
		ast.Item(ast.InternedTerm("result"), ast.StringTerm(ev.Result)),
	)
}

// Value builds the input.session document. A nil history is the empty
// one: a session with no decisions yet.
func (h *SessionHistory) Value() ast.Value {
	if h == nil {
		return emptySession
	}
	return h.value()
}

// emptySession is input.session of a session with no decisions yet, built
// once: evaluation only reads its input.
var emptySession = (*SessionHistory)(nil).value()

func (h *SessionHistory) value() ast.Value {
	var events []*ast.Term
	var counts [3]int64
	var dropped int64
	if h != nil {
		events = h.terms
		if len(events) != len(h.Events) {
			events = make([]*ast.Term, len(h.Events))
			for i, ev := range h.Events {
				events[i] = ev.term()
			}
		}
		counts = [3]int64{h.Counts["allow"], h.Counts["deny"], h.Counts["error"]}
		dropped = h.Dropped
	}
	return ast.NewObject(
		ast.Item(ast.InternedTerm("history"), ast.ArrayTerm(events...)),
		ast.Item(ast.InternedTerm("counts"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("allow"), ast.IntNumberTerm(int(counts[0]))),
			ast.Item(ast.InternedTerm("deny"), ast.IntNumberTerm(int(counts[1]))),
			ast.Item(ast.InternedTerm("error"), ast.IntNumberTerm(int(counts[2]))),
		)),
		ast.Item(ast.InternedTerm("dropped"), ast.IntNumberTerm(int(dropped))),
	)
}

// SessionLog keeps the histories of the sessions of a server, bounded: at
// most perSession events each (a ring), at most sessions sessions (the
// least recently active one is forgotten first). It is safe for
// concurrent use.
type SessionLog struct {
	mu         sync.Mutex
	perSession int
	keep       int
	tick       uint64
	byID       map[string]*sessionRing
}

type sessionRing struct {
	events  []SessionEvent // ring of perSession
	terms   []*ast.Term    // events[i] as a document, once built
	next    int            // where the next event goes
	n       int            // events held
	counts  [3]int64
	dropped int64
	seen    uint64 // tick of the last event, for eviction
}

// NewSessionLog returns a log keeping perSession events for each of at
// most sessions sessions; zero values mean the defaults.
func NewSessionLog(perSession, sessions int) *SessionLog {
	if perSession <= 0 {
		perSession = DefaultHistoryLen
	}
	if sessions <= 0 {
		sessions = DefaultHistoryKeep
	}
	return &SessionLog{perSession: perSession, keep: sessions, byID: map[string]*sessionRing{}}
}

// Record appends an event to session's history. Events of no session, or
// with a result other than allow, deny or error, are not kept.
func (l *SessionLog) Record(session string, ev SessionEvent) { l.add(session, ev, true) }

// Count counts an event in session's counts and Dropped without listing
// it: a decision whose audit record was coalesced into a summary (a
// refusal past its budget) still counts, but a flood of them does not
// push the session's other events out of its history.
func (l *SessionLog) Count(session string, ev SessionEvent) { l.add(session, ev, false) }

func (l *SessionLog) add(session string, ev SessionEvent, listed bool) {
	ri := resultIndex(ev.Result)
	if l == nil || session == "" || ri < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.byID[session]
	if !ok {
		if len(l.byID) >= l.keep {
			l.evict()
		}
		r = &sessionRing{events: make([]SessionEvent, l.perSession), terms: make([]*ast.Term, l.perSession)}
		l.byID[session] = r
	}
	l.tick++
	r.seen = l.tick
	r.counts[ri]++
	switch {
	case !listed:
		r.dropped++
		return
	case r.n == len(r.events):
		r.dropped++
	default:
		r.n++
	}
	// The event's document is built when a history is asked for: most
	// policies never read it.
	r.events[r.next], r.terms[r.next] = ev, nil
	r.next = (r.next + 1) % len(r.events)
}

func (l *SessionLog) evict() {
	var oldest string
	var at uint64
	for id, r := range l.byID {
		if oldest == "" || r.seen < at {
			oldest, at = id, r.seen
		}
	}
	delete(l.byID, oldest)
}

// History returns a copy of session's history; nil when it has none.
func (l *SessionLog) History(session string) *SessionHistory {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.byID[session]
	if !ok {
		return nil
	}
	h := &SessionHistory{Events: make([]SessionEvent, 0, r.n), terms: make([]*ast.Term, 0, r.n), Dropped: r.dropped,
		Counts: map[string]int64{"allow": r.counts[0], "deny": r.counts[1], "error": r.counts[2]}}
	start := (r.next - r.n + len(r.events)) % len(r.events)
	for i := range r.n {
		j := (start + i) % len(r.events)
		if r.terms[j] == nil {
			r.terms[j] = r.events[j].term()
		}
		h.Events, h.terms = append(h.Events, r.events[j]), append(h.terms, r.terms[j])
	}
	return h
}

// Sessions is how many sessions have a history.
func (l *SessionLog) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byID)
}

func resultIndex(result string) int {
	switch result {
	case "allow":
		return 0
	case "deny":
		return 1
	case "error":
		return 2
	}
	return -1
}
