package audit

import (
	"context"
	"fmt"
)

// Staging. A caller that runs several calls back to back, none of which
// has an effect before its answer (a tool that only reads the server's
// memory, or a refusal), can have all their records written in one batch:
// one file lock, one check of the path, one write (and one sync). Under a
// context from WithStage, Log and LogBatch encode each record as always
// (redacted, capped, masked) and keep it in the Stage instead of writing
// it; Commit writes all of them, in order, and only once it returns nil
// may the caller answer those calls. A Commit that fails fails every call
// whose records it held, as a failed batch does.
//
// A staged record is not written yet: nothing its record must precede may
// happen before Commit. A call that has effects takes its context through
// Unstaged, so its records are written at once, before the effect.

// Stage holds the records logged under a context from WithStage until
// Commit. It is for one goroutine.
type Stage struct {
	entries []staged
	buf     []byte // the encoded bodies, one after another
	// rs and bodies are Commit's, kept for the next: a record is large,
	// and groups commit many times a second.
	rs     []Record
	bodies [][]byte
}

// staged is one record kept by a Stage: its logger, the record (for the
// error log should the write fail) and where its body lies in buf.
type staged struct {
	l          *Logger
	r          Record
	start, end int
	// then learns of r once Commit has written it; nil: nobody.
	then Committer
}

// Committer learns of a staged record once it is written: what follows
// from a record (a session's history) must not follow from one that a
// failed Commit never wrote.
type Committer interface {
	Committed(Record)
}

// StageOf returns the stage of ctx, or nil.
func StageOf(ctx context.Context) *Stage { return stageOf(ctx) }

type stageKey struct{}

// WithStage returns ctx under which Log and LogBatch keep their records
// in s.
func WithStage(ctx context.Context, s *Stage) context.Context {
	return context.WithValue(ctx, stageKey{}, s)
}

// Unstaged returns ctx without its stage, if it has one: records logged
// under it are written before Log returns.
func Unstaged(ctx context.Context) context.Context {
	if s, _ := ctx.Value(stageKey{}).(*Stage); s == nil {
		return ctx
	}
	return context.WithValue(ctx, stageKey{}, (*Stage)(nil))
}

func stageOf(ctx context.Context) *Stage {
	s, _ := ctx.Value(stageKey{}).(*Stage)
	return s
}

// Len is how many records s holds (0 for a nil s).
func (s *Stage) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// OnCommitted has c learn of each record s took from the from-th on
// (from: s.Len() before they were logged) once a Commit writes them;
// none if that Commit fails. It reports false when s took none of them
// (s nil, or nothing was staged): then nothing waits for a Commit.
func (s *Stage) OnCommitted(from int, c Committer) bool {
	if s == nil || from >= len(s.entries) {
		return false
	}
	for i := from; i < len(s.entries); i++ {
		s.entries[i].then = c
	}
	return true
}

// add keeps r, encoded as body (which the caller still owns).
func (s *Stage) add(l *Logger, r Record, body []byte) {
	start := len(s.buf)
	s.buf = append(s.buf, body...)
	s.entries = append(s.entries, staged{l: l, r: r, start: start, end: len(s.buf)})
}

// Commit writes the records s holds, in the order they were logged, each
// logger's in one batch, and empties s. It returns the first error (which
// wraps ErrWrite): the calls whose records s held must then fail.
func (s *Stage) Commit(ctx context.Context) error {
	if len(s.entries) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	defer s.reset()
	var first error
	for i := 0; i < len(s.entries); {
		l := s.entries[i].l
		// writeEncoded keeps neither slice once it returns.
		rs, bodies := s.rs[:0], s.bodies[:0]
		j := i
		for ; j < len(s.entries) && s.entries[j].l == l; j++ {
			e := &s.entries[j]
			rs = append(rs, e.r)
			bodies = append(bodies, s.buf[e.start:e.end])
		}
		if err := l.writeEncoded(ctx, rs, bodies); err != nil && first == nil {
			first = err
		}
		clear(rs) // drop the records' references
		clear(bodies)
		s.rs, s.bodies = rs[:0], bodies[:0]
		i = j
	}
	if first == nil {
		for i := range s.entries {
			if e := &s.entries[i]; e.then != nil {
				e.then.Committed(e.r)
			}
		}
	}
	return first
}

// reset empties s, keeping its buffers unless they grew large.
func (s *Stage) reset() {
	clear(s.entries) // drop the records' references
	s.entries = s.entries[:0]
	if cap(s.entries) > 1024 {
		s.entries = nil
	}
	if cap(s.rs) > 1024 {
		s.rs, s.bodies = nil, nil
	}
	s.buf = s.buf[:0]
	if cap(s.buf) > 256<<10 {
		s.buf = nil
	}
}

// writeEncoded writes encoded records in order, in one batch on a sink
// that takes batches, and returns the first error, wrapping ErrWrite.
func (l *Logger) writeEncoded(ctx context.Context, rs []Record, bodies [][]byte) error {
	if bs, ok := l.sink.(batchSink); ok {
		return l.commitAll(ctx, bs, rs, bodies)
	}
	for i, body := range bodies {
		if err := l.writeOne(ctx, rs[i], body); err != nil {
			return err
		}
	}
	return nil
}

// writeOne chains and writes one encoded record on a sink that does not
// take batches.
func (l *Logger) writeOne(ctx context.Context, r Record, body []byte) error {
	if _, local := l.sink.(localSink); !local {
		// A sink that may block gets a deadline of its own; the local sinks
		// ignore the context, and a timer per record would cost more than
		// their write.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, writeTimeout)
		defer cancel()
	}
	// The one sink shared with other writers (FileSink) takes the batch
	// path, which holds its file lock; other sinks are this process's
	// alone.
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.startChain(ctx, len(body))
	if err == nil {
		line, h := chainLine(body, l.prev)
		if err = l.sink.Write(ctx, line); err == nil {
			l.prev = h
			if l.tee != nil {
				l.tee(append([]byte(nil), body...))
			}
			return nil
		}
	}
	l.failed(r, err)
	return fmt.Errorf("%w: %w", ErrWrite, err)
}
