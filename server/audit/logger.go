package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"time"
)

// writeTimeout bounds one record write, independent of the request.
const writeTimeout = 5 * time.Second

// Options configure a Logger.
type Options struct {
	Labels map[string]string // added to every record
	Clock  func() time.Time  // nil means time.Now
	Log    *slog.Logger      // stderr, for write failures; nil discards
}

// Logger redacts, encodes and writes records.
type Logger struct {
	sink   Sink
	labels map[string]string
	now    func() time.Time
	log    *slog.Logger
}

// New returns a Logger writing to sink.
func New(sink Sink, opts *Options) *Logger {
	l := &Logger{sink: sink, now: time.Now, log: slog.New(slog.DiscardHandler)}
	if opts != nil {
		l.labels = maps.Clone(opts.Labels)
		if opts.Clock != nil {
			l.now = opts.Clock
		}
		if opts.Log != nil {
			l.log = opts.Log
		}
	}
	return l
}

// Log writes r. The input is redacted and the timestamp set (UTC) if zero.
// It writes on a context detached from ctx, so a cancelled request is still
// recorded. An error wraps ErrWrite; the caller must fail the call.
func (l *Logger) Log(ctx context.Context, r Record) error {
	if r.Timestamp.IsZero() {
		r.Timestamp = l.now()
	}
	r.Timestamp = r.Timestamp.UTC()
	if r.Input != nil {
		r.Input = Redact(r.Input)
	}
	if r.Labels == nil {
		r.Labels = l.labels
	}
	data, err := json.Marshal(r)
	if err != nil {
		l.log.Error("audit record does not encode", "decision_id", r.DecisionID, "err", err)
		return fmt.Errorf("%w: encode: %w", ErrWrite, err)
	}
	wctx := context.WithoutCancel(ctx)
	if _, local := l.sink.(localSink); !local {
		// A sink that may block gets a deadline of its own; the local sinks
		// ignore the context, and a timer per record would cost more than
		// their write.
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(wctx, writeTimeout)
		defer cancel()
	}
	if err := l.sink.Write(wctx, data); err != nil {
		l.log.Error("audit write failed", "decision_id", r.DecisionID, "kind", r.Kind, "tool", r.Tool, "err", err)
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// Close closes the sink.
func (l *Logger) Close() error { return l.sink.Close() }
