package telemetry

import (
	"context"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

// The tracer New hands out is this package's own implementation of the
// OpenTelemetry trace API, not the SDK's. A tools/call makes four spans
// at least, and the SDK's recording span costs about 2 µs and three
// allocations each on the call's path: a span of about 500 bytes, its
// attributes grown as they are set, and a copy of all of it (the
// snapshot) when it ends, before its batch processor takes it through a
// channel. Here a span is one allocation that the exporter takes as it
// is, its attributes are appended to a slice sized for the common case,
// and the conversion to OTLP happens on the exporter's goroutine.
//
// What the SDK does that the server relies on is kept: the SDK's own
// samplers (the policy's or OTEL_TRACES_SAMPLER), parent and remote
// parent links, trace state, span kinds, explicit start and end times,
// status precedence (Ok is final, only Error keeps a description),
// events and links, a cap on attributes, events and links per span,
// OTEL_BSP_* batching with a bounded queue that drops when full, and
// export through the OTLP exporters' clients. Metrics stay with the SDK.

// Limits per span, the SDK's defaults.
const (
	maxSpanAttrs  = 128
	maxSpanEvents = 128
	maxSpanLinks  = 128
)

// tracerProvider is the trace.TracerProvider of an enabled Telemetry.
type tracerProvider struct {
	embedded.TracerProvider
	sampler sdktrace.Sampler // nil for DefaultSampler (sampledUnlessLocalParentIsNot)
	exp     *batcher

	mu      sync.Mutex
	tracers map[scopeKey]*tracer
}

var _ trace.TracerProvider = (*tracerProvider)(nil)

type scopeKey struct {
	name, version, schema string
	attrs                 attribute.Distinct
}

// newTracerProvider makes a provider exporting through exp.
func newTracerProvider(sampler sdktrace.Sampler, exp *batcher) *tracerProvider {
	if sampler.Description() == defaultSampler {
		sampler = nil // decided by sampledUnlessLocalParentIsNot
	}
	return &tracerProvider{sampler: sampler, exp: exp, tracers: map[scopeKey]*tracer{}}
}

// Tracer returns the tracer of an instrumentation scope, one per scope.
func (p *tracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	c := trace.NewTracerConfig(opts...)
	set := c.InstrumentationAttributes()
	k := scopeKey{name, c.InstrumentationVersion(), c.SchemaURL(), set.Equivalent()}
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tracers[k]
	if !ok {
		t = &tracer{p: p, schemaURL: k.schema, scope: &commonpb.InstrumentationScope{
			Name: name, Version: k.version, Attributes: keyValues(set.ToSlice()),
		}}
		p.tracers[k] = t
	}
	return t
}

// tracer starts the spans of one instrumentation scope.
type tracer struct {
	embedded.Tracer
	p         *tracerProvider
	scope     *commonpb.InstrumentationScope
	schemaURL string
}

var _ trace.Tracer = (*tracer)(nil)

// Start begins a span, a child of the span in ctx (local or remote)
// unless trace.WithNewRoot says otherwise, sampled as the sampler says.
func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := trace.NewSpanStartConfig(opts...)
	var parent trace.SpanContext
	if !cfg.NewRoot() {
		parent = trace.SpanContextFromContext(ctx)
	}
	tid := parent.TraceID()
	if !parent.IsValid() {
		tid = newTraceID()
	}
	kind := trace.ValidateSpanKind(cfg.SpanKind())
	var sr sdktrace.SamplingResult
	if t.p.sampler == nil {
		sr = sampledUnlessLocalParentIsNot(parent)
	} else {
		sctx := ctx
		if cfg.NewRoot() {
			sctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{}) // as the SDK shows a new root
		}
		sr = t.p.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: sctx, TraceID: tid, Name: name,
			Kind: kind, Attributes: cfg.Attributes(), Links: cfg.Links()})
	}
	scc := trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), TraceState: sr.Tracestate}
	if sr.Decision == sdktrace.RecordAndSample {
		scc.TraceFlags = parent.TraceFlags() | trace.FlagsSampled
	} else {
		scc.TraceFlags = parent.TraceFlags() &^ trace.FlagsSampled
	}
	sc := trace.NewSpanContext(scc)
	if sr.Decision == sdktrace.Drop || t.p.exp.stopped.Load() {
		ns := &nonRecordingSpan{sc: sc, p: t.p}
		return ns.ctx.with(ctx, ns), ns
	}
	start := cfg.Timestamp()
	if start.IsZero() {
		start = now()
	}
	s := &span{t: t, sc: sc, parent: parent.SpanID(), remoteParent: parent.IsRemote(), kind: uint8(kind),
		name: name, start: start, sampled: sr.Decision == sdktrace.RecordAndSample}
	if n := len(cfg.Attributes()) + len(sr.Attributes); n > 0 {
		s.attrs = make([]attribute.KeyValue, 0, n+spareAttrs)
		s.addAttrs(cfg.Attributes())
		s.addAttrs(sr.Attributes)
	}
	for _, l := range cfg.Links() {
		s.addLink(l)
	}
	return s.ctx.with(ctx, s), s
}

// spanCtx is the context Start returns: the parent context with the
// span as its current span. It lives in the span itself, so that a
// span costs one allocation where trace.ContextWithSpan would add a
// second (a context.WithValue) for every span of a call. S is *span or
// *nonRecordingSpan.
type spanCtx[S trace.Span] struct {
	context.Context
	span S
}

// Value answers the trace API's key with the span, and any other key as
// the parent context does.
func (c *spanCtx[S]) Value(key any) any {
	if key == spanKey {
		return c.span
	}
	return c.Context.Value(key)
}

// with makes c the context of sp under parent and returns it; sp is the
// span c is part of, not yet shared.
func (c *spanCtx[S]) with(parent context.Context, sp S) context.Context {
	if spanKey == nil {
		return trace.ContextWithSpan(parent, sp)
	}
	c.Context, c.span = parent, sp
	return c
}

// spanKey is the key under which the trace API looks up the current
// span (trace.SpanFromContext). init learns it by asking a context that
// records what it is asked, and keeps it only if a spanCtx then answers
// trace.SpanFromContext with its span; else it stays nil, and Start puts
// its spans in contexts with trace.ContextWithSpan.
var spanKey any

func init() {
	var p keyProbe
	trace.SpanFromContext(&p)
	if len(p.keys) != 1 {
		return
	}
	spanKey = p.keys[0]
	probe, nprobe := &span{}, &nonRecordingSpan{}
	var c spanCtx[*span]
	var nc spanCtx[*nonRecordingSpan]
	if trace.SpanFromContext(c.with(context.Background(), probe)) != trace.Span(probe) ||
		trace.SpanFromContext(nc.with(context.Background(), nprobe)) != trace.Span(nprobe) {
		spanKey = nil
	}
}

// keyProbe is a context that records the keys it is asked for.
type keyProbe struct {
	context.Context
	keys []any
}

func (p *keyProbe) Value(key any) any {
	p.keys = append(p.keys, key)
	return nil
}

// defaultSampler describes DefaultSampler.
var defaultSampler = DefaultSampler().Description()

// sampledUnlessLocalParentIsNot is what DefaultSampler decides, without
// looking the parent up in the context again: a root is sampled, a child
// of a remote parent (the client's traceparent) too, whatever its flag
// says; a child of a local span as that span was.
func sampledUnlessLocalParentIsNot(parent trace.SpanContext) sdktrace.SamplingResult {
	r := sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: parent.TraceState()}
	if parent.IsValid() && !parent.IsRemote() && !parent.IsSampled() {
		r.Decision = sdktrace.Drop
	}
	return r
}

// spareAttrs is room left for the attributes set after a span starts
// with some.
const spareAttrs = 2

// clockBase is a recent time.Now, with its monotonic reading.
var clockBase atomic.Pointer[time.Time]

// now is the time a span starts or ends: time.Now read from the
// monotonic clock alone (one clock read instead of two), as an offset
// from clockBase, which is read again when it is a second old. The wall
// clock it gives may lag a step or a slew of the system clock by that
// second at most.
func now() time.Time {
	if b := clockBase.Load(); b != nil {
		if d := time.Since(*b); d >= 0 && d < time.Second {
			return b.Add(d)
		}
	}
	t := time.Now()
	clockBase.Store(&t)
	return t
}

// newTraceID and newSpanID draw random non-zero ids from the runtime's
// per-thread generator (no lock, unlike a shared math/rand source).
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
		}
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		a := rand.Uint64()
		for i := range 8 {
			id[i] = byte(a >> (8 * i))
		}
	}
	return id
}

// span is a recording span. Its identity, parent, kind and start never
// change; the rest is guarded by mu until it ends, and read only by the
// exporter after that. It is kept small (what most spans never use is in
// rare): every call allocates several.
type span struct {
	embedded.Span
	t      *tracer
	sc     trace.SpanContext
	parent trace.SpanID
	start  time.Time
	name   string
	// ctx is the context Start returned, with this span in it.
	ctx spanCtx[*span]
	// attrs are the attributes set; lazy, those deferred, built at
	// export (only while attrs is empty: they come first).
	attrs []attribute.KeyValue
	lazy  [2]AttributeSource

	mu sync.Mutex
	// dur is the span's duration once it ended.
	dur          time.Duration
	rare         *rareFields
	code         codes.Code // the status code; its description is in rare
	droppedAttrs int32      // attributes beyond the limit
	ended        atomic.Bool
	kind         uint8 // a trace.SpanKind, which ValidateSpanKind keeps within 0-5
	remoteParent bool
	sampled      bool // exported at End (else recorded only)
}

// rareFields are the parts of a span that few spans use.
type rareFields struct {
	status                      string // the description of an Error status
	events                      []event
	links                       []link
	droppedEvents, droppedLinks int
}

func (s *span) rareFields() *rareFields {
	if s.rare == nil {
		s.rare = &rareFields{}
	}
	return s.rare
}

// end is when the span ended.
func (s *span) end() time.Time { return s.start.Add(s.dur) }

// event is a span event.
type event struct {
	name    string
	time    time.Time
	attrs   []attribute.KeyValue
	dropped int
}

// link is a span link, with its own copy of the attributes.
type link struct {
	sc      trace.SpanContext
	attrs   []attribute.KeyValue
	dropped int
}

// limitedAttrs is a copy of the valid attributes of kv, at most
// maxSpanAttrs of them, and how many past that were dropped.
func limitedAttrs(kv []attribute.KeyValue) (out []attribute.KeyValue, dropped int) {
	for _, a := range kv {
		switch {
		case !a.Valid():
		case len(out) >= maxSpanAttrs:
			dropped++
		default:
			out = append(out, a)
		}
	}
	return out, dropped
}

var _ trace.Span = (*span)(nil)

func (s *span) SpanContext() trace.SpanContext { return s.sc }

func (s *span) IsRecording() bool { return !s.ended.Load() }

func (s *span) TracerProvider() trace.TracerProvider { return s.t.p }

// SetAttributes adds attributes; the exporter keeps the last value of a
// key set twice.
func (s *span) SetAttributes(kv ...attribute.KeyValue) {
	if len(kv) == 0 {
		return
	}
	s.mu.Lock()
	if !s.ended.Load() {
		s.unlazy(len(kv))
		if s.attrs == nil {
			// Room for one more: a span's attributes mostly come at
			// once, and an error adds one.
			s.attrs = make([]attribute.KeyValue, 0, len(kv)+1)
		}
		s.addAttrs(kv)
	}
	s.mu.Unlock()
}

// AttributeSource gives attributes that a span builds only when it is
// exported, off the path of the call that set them: AppendAttributes
// appends them to dst. It must give the same attributes each time, and
// may be called on another goroutine once the span has ended, so what
// it reads must not change after it is handed to the span.
type AttributeSource = interface {
	AppendAttributes(dst []attribute.KeyValue) []attribute.KeyValue
}

// DeferAttributes adds the attributes of src, as SetAttributes would at
// this point, but builds them only at export: a span that is never
// exported never builds them, and the call that set them pays for
// neither the attribute slice nor their values. A span keeps up to two
// sources while no attribute was set directly; past that, it builds
// them now.
func (s *span) DeferAttributes(src AttributeSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return
	}
	if len(s.attrs) == 0 {
		for i := range s.lazy {
			if s.lazy[i] == nil {
				s.lazy[i] = src
				return
			}
		}
	}
	s.unlazy(0)
	s.addAttrs(src.AppendAttributes(nil))
}

// unlazy builds the deferred attributes into attrs, with room for n
// more; s.mu is held. The deferred come first: they were set while
// attrs was empty.
func (s *span) unlazy(n int) {
	if s.lazy[0] == nil {
		return
	}
	kv := make([]attribute.KeyValue, 0, lazyRoom+n)
	for _, src := range s.lazy {
		if src != nil {
			kv = src.AppendAttributes(kv)
		}
	}
	s.lazy = [2]AttributeSource{}
	var dropped int
	s.attrs, dropped = limitInPlace(kv) // attrs was empty
	s.droppedAttrs += int32(dropped)
}

// lazyRoom is the room made for deferred attributes built at once: the
// most the server's sources give.
const lazyRoom = 16

// exportAttrs are the span's attributes as exported, the deferred ones
// built into buf (returned grown), and how many were dropped; called
// once the span ended.
func (s *span) exportAttrs(buf []attribute.KeyValue) (attrs, grown []attribute.KeyValue, dropped int) {
	if s.lazy[0] == nil {
		return dedupe(s.attrs), buf, int(s.droppedAttrs)
	}
	start := len(buf)
	for _, src := range s.lazy {
		if src != nil {
			buf = src.AppendAttributes(buf)
		}
	}
	attrs, dropped = limitInPlace(buf[start:])
	return dedupe(attrs), buf, dropped
}

// limitInPlace keeps the valid attributes of kv within the limit, as
// addAttrs adds them to an empty span, reusing kv's array.
func limitInPlace(kv []attribute.KeyValue) (out []attribute.KeyValue, dropped int) {
	out = kv[:0]
	for _, a := range kv {
		switch {
		case !a.Valid():
		case len(out) < maxSpanAttrs:
			out = append(out, a) // never past the attribute read
		case replaceAttr(out, a):
		default:
			if d := dedupe(out); len(d) < len(out) {
				out = append(d, a) // d is a copy
			} else {
				dropped++
			}
		}
	}
	return out, dropped
}

// addAttrs appends the valid attributes of kv within the limit; s.mu is
// held or s not yet shared. The limit is on distinct keys, as in the
// SDK: at the limit, a key set before takes the new value, and only a
// new key is dropped.
func (s *span) addAttrs(kv []attribute.KeyValue) {
	for _, a := range kv {
		switch {
		case !a.Valid():
		case len(s.attrs) < maxSpanAttrs:
			s.attrs = append(s.attrs, a)
		case replaceAttr(s.attrs, a):
		default:
			if d := dedupe(s.attrs); len(d) < len(s.attrs) {
				s.attrs = append(d, a)
			} else {
				s.droppedAttrs++
			}
		}
	}
}

// replaceAttr sets the value of a's key in attrs to a's in place, at
// its last occurrence (the one exported); false if the key is not set.
func replaceAttr(attrs []attribute.KeyValue, a attribute.KeyValue) bool {
	for i := len(attrs) - 1; i >= 0; i-- {
		if attrs[i].Key == a.Key {
			attrs[i] = a
			return true
		}
	}
	return false
}

// addLink keeps l, with a copy of its attributes (the caller may reuse
// the slice); a link without a valid context is kept only if it has
// attributes or a trace state, as the specification says.
func (s *span) addLink(l trace.Link) {
	if !l.SpanContext.IsValid() && len(l.Attributes) == 0 && l.SpanContext.TraceState().Len() == 0 {
		return
	}
	r := s.rareFields()
	if len(r.links) >= maxSpanLinks {
		r.droppedLinks++
		return
	}
	attrs, dropped := limitedAttrs(l.Attributes)
	r.links = append(r.links, link{sc: l.SpanContext, attrs: attrs, dropped: dropped})
}

func (s *span) AddLink(l trace.Link) {
	s.mu.Lock()
	if !s.ended.Load() {
		s.addLink(l)
	}
	s.mu.Unlock()
}

func (s *span) AddEvent(name string, opts ...trace.EventOption) {
	cfg := trace.NewEventConfig(opts...)
	s.addEvent(name, cfg.Timestamp(), cfg.Attributes())
}

func (s *span) addEvent(name string, ts time.Time, attrs []attribute.KeyValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return
	}
	r := s.rareFields()
	if len(r.events) >= maxSpanEvents {
		r.droppedEvents++
		return
	}
	e := event{name: name, time: ts}
	e.attrs, e.dropped = limitedAttrs(attrs)
	r.events = append(r.events, e)
}

// RecordError adds an exception event, as the SDK does: with a stack
// trace only when trace.WithStackTrace asks for one.
func (s *span) RecordError(err error, opts ...trace.EventOption) {
	if err == nil || !s.IsRecording() {
		return
	}
	cfg := trace.NewEventConfig(opts...)
	attrs := append([]attribute.KeyValue{
		attribute.String("exception.type", errorType(err)),
		attribute.String("exception.message", err.Error()),
	}, cfg.Attributes()...)
	if cfg.StackTrace() {
		buf := make([]byte, 2048)
		for {
			n := runtime.Stack(buf, false)
			if n < len(buf) || len(buf) >= maxStackTrace {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		attrs = append(attrs, attribute.String("exception.stacktrace", string(buf)))
	}
	s.addEvent("exception", cfg.Timestamp(), attrs)
}

// maxStackTrace bounds the stack trace of an exception event.
const maxStackTrace = 64 << 10

func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// SetStatus sets the status as the SDK does: Ok is final, Error wins
// over Unset, and only Error keeps its description.
func (s *span) SetStatus(code codes.Code, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() || s.code > code {
		return
	}
	s.code = code
	switch {
	case code == codes.Error && description != "":
		s.rareFields().status = description
	case s.rare != nil:
		s.rare.status = ""
	}
}

func (s *span) SetName(name string) {
	s.mu.Lock()
	if !s.ended.Load() {
		s.name = name
	}
	s.mu.Unlock()
}

// End ends the span, at the time trace.WithTimestamp gives or now, and
// queues it for export if sampled. Only the first End counts.
func (s *span) End(opts ...trace.SpanEndOption) {
	if s.ended.Load() {
		return
	}
	var end time.Time
	if len(opts) > 0 {
		cfg := trace.NewSpanEndConfig(opts...)
		end = cfg.Timestamp()
	}
	if end.IsZero() {
		// The duration is from the monotonic readings, as in the SDK, so
		// that a wall clock step does not distort it.
		end = now()
	}
	s.mu.Lock()
	if s.ended.Load() {
		s.mu.Unlock()
		return
	}
	s.dur = end.Sub(s.start)
	s.ended.Store(true)
	s.mu.Unlock()
	if s.sampled {
		s.t.p.exp.add(s)
	}
}

// Elapsed is the span's duration, once it ended (ok).
func (s *span) Elapsed() (d time.Duration, ok bool) {
	if !s.ended.Load() {
		return 0, false
	}
	return s.dur, true // written before ended was set, never again
}

// nonRecordingSpan is a span sampled out: it carries its context to its
// children and records nothing.
type nonRecordingSpan struct {
	embedded.Span
	sc  trace.SpanContext
	p   *tracerProvider
	ctx spanCtx[*nonRecordingSpan]
}

var _ trace.Span = (*nonRecordingSpan)(nil)

func (s *nonRecordingSpan) SpanContext() trace.SpanContext        { return s.sc }
func (*nonRecordingSpan) IsRecording() bool                       { return false }
func (*nonRecordingSpan) SetStatus(codes.Code, string)            {}
func (*nonRecordingSpan) SetAttributes(...attribute.KeyValue)     {}
func (*nonRecordingSpan) End(...trace.SpanEndOption)              {}
func (*nonRecordingSpan) RecordError(error, ...trace.EventOption) {}
func (*nonRecordingSpan) AddEvent(string, ...trace.EventOption)   {}
func (*nonRecordingSpan) AddLink(trace.Link)                      {}
func (*nonRecordingSpan) SetName(string)                          {}
func (s *nonRecordingSpan) TracerProvider() trace.TracerProvider  { return s.p }
