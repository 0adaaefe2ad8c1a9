package server

import (
	"context"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// History wraps an Auditor so that every decision it records also joins
// its session's history (engine.SessionLog), which the tools decision
// point reads as input.session. Hand the same History to the guards and
// to the server (Options.Audit): the guards' decisions of a call then
// count as that session's too.
type History struct {
	Auditor
	log *engine.SessionLog
}

var _ Auditor = (*History)(nil)

// NewHistory returns a recording Auditor over a; log nil means a new
// engine.SessionLog with the default bounds.
func NewHistory(a Auditor, log *engine.SessionLog) *History {
	if log == nil {
		log = engine.NewSessionLog(0, 0)
	}
	return &History{Auditor: a, log: log}
}

// Log records r, then adds it to its session's history. A record that
// could not be written is not history: the call it belongs to fails.
func (h *History) Log(ctx context.Context, r audit.Record) error {
	st := audit.StageOf(ctx)
	from := st.Len()
	if err := h.Auditor.Log(ctx, r); err != nil {
		return err
	}
	// A staged record is history once its stage is written.
	if !st.OnCommitted(from, h) {
		h.record(r)
	}
	return nil
}

// Committed implements audit.Committer: a staged record, now written.
func (h *History) Committed(r audit.Record) { h.record(r) }

// LogBatch records rs together (see batchAuditor), then adds them to
// their sessions' history.
func (h *History) LogBatch(ctx context.Context, rs []audit.Record) error {
	st := audit.StageOf(ctx)
	from := st.Len()
	if err := logBatch(ctx, h.Auditor, rs); err != nil {
		return err
	}
	if st.OnCommitted(from, h) {
		return nil
	}
	for _, r := range rs {
		h.record(r)
	}
	return nil
}

func (h *History) record(r audit.Record) {
	switch r.Kind {
	case audit.KindToolCall, audit.KindValidation, audit.KindRateLimit,
		audit.KindNetwork, audit.KindFilesystem, audit.KindCommand:
		h.log.Record(r.SessionID, engine.SessionEvent{Tool: r.Tool, Kind: r.Kind, Result: r.Result})
	}
}

// batchAuditor is an Auditor that writes several records together (one
// file lock, one write, one sync); *audit.Logger and *History are.
type batchAuditor interface {
	LogBatch(ctx context.Context, rs []audit.Record) error
}

var (
	_ batchAuditor = (*audit.Logger)(nil)
	_ batchAuditor = (*History)(nil)
)

// logBatch writes rs in order through a, together when a can, and
// returns the first error.
func logBatch(ctx context.Context, a Auditor, rs []audit.Record) error {
	if b, ok := a.(batchAuditor); ok {
		return b.LogBatch(ctx, rs)
	}
	for _, r := range rs {
		if err := a.Log(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Syncs reports whether the auditor syncs its records to disk (see
// audit.Logger.Syncs); an auditor that does not tell is taken to.
func (h *History) Syncs() bool {
	s, ok := h.Auditor.(interface{ Syncs() bool })
	return !ok || s.Syncs()
}

// countUnrecorded counts in its session's history a decision whose own
// audit record was not written (a refusal past its budget, which a
// summary record counts): input.session.counts must count every
// decision, or a client could blind rules on them by flooding refusals.
func (p *pipeline) countUnrecorded(r audit.Record) {
	if h, ok := p.audit.(*History); ok {
		h.log.Count(r.SessionID, engine.SessionEvent{Tool: r.Tool, Kind: r.Kind, Result: r.Result})
	}
}

// sessionHistory is the history of session the pipeline offers to the
// policy, when its auditor keeps one.
func (p *pipeline) sessionHistory(session string) *engine.SessionHistory {
	if h, ok := p.audit.(*History); ok {
		return h.log.History(session)
	}
	return nil
}

// readsSession reports whether a tools decision under ctx may read
// input.session: unless the decider proves it cannot (engine.Engine
// does, per snapshot), it may. A dry-run policy decides on the same
// input, so while one is configured the history is always offered.
func (p *pipeline) readsSession(ctx context.Context) bool {
	if p.dryActive() {
		return true
	}
	r, ok := p.decide.(interface{ ReadsSession(context.Context) bool })
	return !ok || r.ReadsSession(ctx)
}

// dryActive reports whether a dry-run policy may be configured now.
func (p *pipeline) dryActive() bool {
	if p.dry == nil {
		return false
	}
	a, ok := p.dry.(interface{ Active() bool })
	return !ok || a.Active()
}
