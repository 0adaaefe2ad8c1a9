package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// writeTimeout bounds one record write, independent of the request.
const writeTimeout = 5 * time.Second

// Default caps.
const (
	// DefaultMaxValueBytes caps one string, key, array or object of a
	// record.
	DefaultMaxValueBytes = 4 << 10
	// DefaultMaxRecordBytes caps one record before its chain fields.
	DefaultMaxRecordBytes = 64 << 10
)

// Options configure a Logger.
type Options struct {
	Labels map[string]string // added to every record
	Clock  func() time.Time  // nil means time.Now
	Log    *slog.Logger      // stderr, for write failures; nil discards
	// Key is the fingerprint key of redaction markers (see LoadKey); nil
	// means a random key for this process.
	Key []byte
	// Masker, if set, applies mask rules to every record.
	Masker Masker
	// MaxValueBytes caps every string, object key, array and object in a
	// record (but the input object as a whole, which MaxRecordBytes caps):
	// a larger value becomes a Truncated. 0 means DefaultMaxValueBytes,
	// negative no cap.
	MaxValueBytes int
	// MaxRecordBytes caps a record: past it the input, then the reasons,
	// error, tool, client and ids become Truncated. 0 means
	// DefaultMaxRecordBytes, negative no cap.
	MaxRecordBytes int
	// OmitRequestID and OmitDuration leave request_id and duration_ns out
	// of every record (the policy's audit.include without request_id or
	// execution_time).
	OmitRequestID, OmitDuration bool
	// Tee, if set, is handed a copy of each record after it is written:
	// the record as in the file (redacted, capped, masked), without its
	// chain fields. It must not block.
	Tee func(record []byte)
}

// Logger redacts, caps, masks, chains, encodes and writes records.
type Logger struct {
	sink   Sink
	labels atomic.Pointer[map[string]string]
	now    func() time.Time
	log    *slog.Logger
	red    *Redactor
	masker Masker
	maxVal int
	maxRec int
	omitID bool
	omitNS bool
	tee    func([]byte)

	// mu orders records: the chain is the order of the lines in the file.
	mu sync.Mutex
	// prev is the hash of the last record written.
	prev string
	// genesis, if set, is why a genesis record must start the chain
	// before the next record.
	genesis string
	// batches queues records for a sink that takes them in batches
	// (batch.go).
	batches committer
}

// tailSink is a sink that knows how its file ended when it was opened.
type tailSink interface {
	tail() (last []byte, empty, torn bool)
}

// sharedSink is a sink that other processes may append to (several
// servers on one log): lock holds the file for one batch of records and
// reports its last line when someone else wrote since this process did,
// so the chain continues from their record. It is a batchSink: only
// writeBatch takes the lock, so Log sends every record of such a sink
// there.
type sharedSink interface {
	batchSink
	lock() (last []byte, changed, torn bool, err error)
	unlock()
}

// rotatingSink is a sink that rotates by size.
type rotatingSink interface {
	needsRotation(next int) bool
	rotate() (old string, err error)
}

// New returns a Logger writing to sink. A file sink's chain continues
// from the file's last record; a new file, or one whose last line is torn
// or not a chained record, starts with a genesis record saying so.
func New(sink Sink, opts *Options) *Logger {
	l := &Logger{sink: sink, now: time.Now, log: slog.New(slog.DiscardHandler),
		maxVal: DefaultMaxValueBytes, maxRec: DefaultMaxRecordBytes}
	var key []byte
	if opts != nil {
		labels := maps.Clone(opts.Labels)
		l.labels.Store(&labels)
		if opts.Clock != nil {
			l.now = opts.Clock
		}
		if opts.Log != nil {
			l.log = opts.Log
		}
		key = opts.Key
		l.masker = opts.Masker
		l.maxVal = limit(opts.MaxValueBytes, DefaultMaxValueBytes)
		l.maxRec = limit(opts.MaxRecordBytes, DefaultMaxRecordBytes)
		l.omitID, l.omitNS = opts.OmitRequestID, opts.OmitDuration
		l.tee = opts.Tee
	}
	l.red = NewRedactor(key)
	if ts, ok := sink.(tailSink); ok {
		last, empty, torn := ts.tail()
		switch {
		case empty:
			l.genesis = "a new audit log begins"
		case torn:
			l.genesis = "the log ended in a torn or unreadable line; a new chain segment begins"
		default:
			if c, err := checkLine(last); err != nil {
				l.genesis = "the log's last line is not a valid chained record (" + err.Error() + "); a new chain segment begins"
			} else {
				l.prev = c.Hash
			}
		}
	}
	return l
}

func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Log writes r. Every client-controlled string is redacted, large values
// are capped, mask rules applied, the timestamp set (UTC) if zero, and the
// record chained to the one before. Under a context from WithStage it
// keeps the encoded record for the stage's Commit instead of writing it. It writes on a context detached from
// ctx, so a cancelled request is still recorded. An error wraps ErrWrite;
// the caller must fail the call.
func (l *Logger) Log(ctx context.Context, r Record) error {
	ctx = context.WithoutCancel(ctx)
	body, release, err := l.encode(ctx, r)
	defer release()
	if err != nil {
		l.log.Error("audit record does not encode", "decision_id", r.DecisionID, "err", err)
		return fmt.Errorf("%w: encode: %w", ErrWrite, err)
	}
	if st := stageOf(ctx); st != nil {
		st.add(l, r, body)
		return nil
	}
	if bs, ok := l.sink.(batchSink); ok {
		return l.commit(ctx, bs, r, body)
	}
	return l.writeOne(ctx, r, body)
}

// LogBatch writes records in order as Log does each, on a sink that
// takes batches in one batch (one file lock, one write, one sync), and
// returns the first error: a call whose records it holds must fail on
// any. Records of other calls may be written in the same batch, before
// or after them, and a full batch may split them.
func (l *Logger) LogBatch(ctx context.Context, rs []Record) error {
	bs, ok := l.sink.(batchSink)
	st := stageOf(ctx)
	if st == nil && (!ok || len(rs) < 2) {
		for _, r := range rs {
			if err := l.Log(ctx, r); err != nil {
				return err
			}
		}
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	bodies := make([][]byte, len(rs))
	for i, r := range rs {
		body, release, err := l.encode(ctx, r)
		defer release()
		if err != nil {
			l.log.Error("audit record does not encode", "decision_id", r.DecisionID, "err", err)
			return fmt.Errorf("%w: encode: %w", ErrWrite, err)
		}
		bodies[i] = body
	}
	if st != nil {
		// Staged together, once all of them encode.
		for i, r := range rs {
			st.add(l, r, bodies[i])
		}
		return nil
	}
	return l.commitAll(ctx, bs, rs, bodies)
}

// follow continues the chain from a record another writer appended.
func (l *Logger) follow(last []byte, torn bool) {
	if torn {
		l.genesis = "another writer left a torn line; a new chain segment begins"
		return
	}
	c, err := checkLine(last)
	if err != nil {
		l.genesis = "another writer's last line is not a valid chained record (" + err.Error() + "); a new chain segment begins"
		return
	}
	l.prev = c.Hash
}

func (l *Logger) failed(r Record, err error) {
	tool := l.red.String(r.Tool)
	if len(tool) > 128 {
		tool = tool[:128] + "..."
	}
	l.log.Error("audit write failed", "decision_id", r.DecisionID, "kind", r.Kind, "tool", tool, "err", err)
}

// startChain rotates the file if the next record would take it past its
// size, and writes a pending genesis record.
func (l *Logger) startChain(ctx context.Context, next int) error {
	if rs, ok := l.sink.(rotatingSink); ok && rs.needsRotation(next+200) {
		old, err := rs.rotate()
		if err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		if old != "" {
			l.genesis = "rotated: the records before this one are in " + filepath.Base(old)
		} else {
			l.genesis = "rotated: the records before this one were removed (no retention)"
		}
	}
	if l.genesis == "" {
		return nil
	}
	e := encoder{r: l.red}
	e.record(&Record{Timestamp: l.now(), DecisionID: NewID(), Kind: KindGenesis,
		Reasons: []string{l.genesis}, Labels: l.currentLabels()})
	line, h := chainLine(e.buf, l.prev)
	if err := l.sink.Write(ctx, line); err != nil {
		return err
	}
	l.prev, l.genesis = h, ""
	return nil
}

// encode builds the record body: redacted, capped and masked. The body is
// in a pooled buffer; the caller returns it with release.
func (l *Logger) encode(ctx context.Context, r Record) (body []byte, release func(), err error) {
	if r.Timestamp.IsZero() {
		r.Timestamp = l.now()
	}
	if r.Labels == nil {
		r.Labels = l.labelsOf(r.Revision)
	}
	if l.omitID {
		r.RequestID = ""
	}
	bp := bufPool.Get().(*[]byte)
	e := encoder{r: l.red, max: l.maxVal, buf: (*bp)[:0], omitDuration: l.omitNS}
	e.record(&r)
	release = func() {
		if cap(e.buf) <= 64<<10 {
			*bp = e.buf[:0]
			bufPool.Put(bp)
		}
	}
	body = e.buf
	if l.masker != nil {
		if body, err = l.mask(ctx, &r, body); err != nil {
			return nil, release, err
		}
	}
	if l.maxRec > 0 && len(body) > l.maxRec {
		body, err = l.capRecord(body)
	}
	return body, release, err
}

// mask applies the mask rules. If they fail, the whole input is erased
// and the record says why: a mask that cannot be evaluated must not let
// through what it was written to hide.
//
// The rules see the record as built (a shallow map of its fields, not a
// decoding of the encoded line): most records match no mask, and for
// those the encoded body is kept as it is.
func (l *Logger) mask(ctx context.Context, r *Record, body []byte) ([]byte, error) {
	if sk, ok := l.masker.(maskSkipper); ok && sk.MaskSkips(ctx, r.Input) {
		return body, nil
	}
	rules, err := l.masker.Mask(ctx, maskInput(r))
	if err == nil && len(rules) == 0 {
		return body, nil
	}
	m, derr := toMap(body)
	if derr != nil {
		return nil, derr
	}
	if err != nil {
		delete(m, "input")
		m["erased"] = []string{"/input"}
		msg := l.red.String(err.Error())
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		m["mask_error"] = "mask rules failed, the input is erased: " + msg
		l.log.Error("audit mask rules failed; erasing the record's input", "decision_id", m["decision_id"], "err", msg)
	} else {
		erased, masked := applyMasks(m, parseMasks(rules))
		if len(erased)+len(masked) == 0 {
			return body, nil // nothing masked: the record as encoded
		}
		if len(erased) > 0 {
			m["erased"] = erased
		}
		if len(masked) > 0 {
			m["masked"] = masked
		}
	}
	return json.Marshal(m)
}

// maskInput is the record as mask rules see it: the fields of the
// encoded record, by their JSON names.
func maskInput(r *Record) map[string]any {
	m := map[string]any{
		"decision_id": r.DecisionID,
		"kind":        r.Kind,
		"duration_ns": r.DurationNS,
	}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("parent_decision_id", r.ParentDecisionID)
	set("session_id", r.SessionID)
	set("request_id", r.RequestID)
	set("path", r.Path)
	set("tool", r.Tool)
	set("result", r.Result)
	set("status", r.Status)
	set("error", r.Error)
	if r.Client != nil {
		m["client"] = map[string]any{"name": r.Client.Name, "version": r.Client.Version}
	}
	if len(r.Reasons) > 0 {
		reasons := make([]any, len(r.Reasons))
		for i, s := range r.Reasons {
			reasons[i] = s
		}
		m["reasons"] = reasons
	}
	if r.Input != nil {
		m["input"] = r.Input
	}
	return m
}

// capOrder is the order in which fields give way when a record is over
// MaxRecordBytes.
var capOrder = []string{"input", "reasons", "error", "tool", "client", "request_id", "session_id", "labels"}

func (l *Logger) capRecord(body []byte) ([]byte, error) {
	m, err := toMap(body)
	if err != nil {
		return nil, err
	}
	for _, k := range capOrder {
		v, ok := m[k]
		if !ok {
			continue
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = truncate(enc)
		if body, err = json.Marshal(m); err != nil {
			return nil, err
		}
		if len(body) <= l.maxRec {
			break
		}
	}
	return body, nil
}

// Syncs reports whether records are synced to disk as they are written
// (a file sink with fsync durability); a sink that does not tell is
// taken to.
func (l *Logger) Syncs() bool {
	switch s := l.sink.(type) {
	case *FileSink:
		return s.opts.Sync
	case *WriterSink:
		return false
	}
	return true
}

// Close closes the sink.
func (l *Logger) Close() error { return l.sink.Close() }

// SetLabel sets one label of every record written from now on (the
// policy bundle's revision after a reload, say).
func (l *Logger) SetLabel(key, value string) {
	for {
		old := l.labels.Load()
		next := map[string]string{key: value}
		if old != nil {
			next = maps.Clone(*old)
			next[key] = value
		}
		if l.labels.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Label returns the value of one label records are written with now.
func (l *Logger) Label(key string) string { return l.currentLabels()[key] }

// labelsOf are the labels of a record decided by bundle revision rev
// (by none named when rev is nil): the current ones, *rev as
// LabelBundleRevision.
func (l *Logger) labelsOf(rev *string) map[string]string {
	cur := l.currentLabels()
	if old, ok := cur[LabelBundleRevision]; rev == nil || ok && old == *rev {
		return cur
	}
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	out[LabelBundleRevision] = *rev
	return out
}

func (l *Logger) currentLabels() map[string]string {
	if p := l.labels.Load(); p != nil {
		return *p
	}
	return nil
}
