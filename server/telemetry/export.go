package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Batching, as OTEL_BSP_* set it; the defaults are the specification's.
type batching struct {
	delay    time.Duration // OTEL_BSP_SCHEDULE_DELAY
	timeout  time.Duration // OTEL_BSP_EXPORT_TIMEOUT
	maxQueue int           // OTEL_BSP_MAX_QUEUE_SIZE
	maxBatch int           // OTEL_BSP_MAX_EXPORT_BATCH_SIZE
}

// batchingFromEnv reads OTEL_BSP_*; a value that is not a positive
// integer leaves the default, as in the SDK.
func batchingFromEnv(getenv func(string) string) batching {
	num := func(k string, def int) int {
		if n, err := strconv.Atoi(getenv(k)); err == nil && n > 0 {
			return n
		}
		return def
	}
	b := batching{
		delay:    time.Duration(num("OTEL_BSP_SCHEDULE_DELAY", 5000)) * time.Millisecond,
		timeout:  time.Duration(num("OTEL_BSP_EXPORT_TIMEOUT", 30000)) * time.Millisecond,
		maxQueue: num("OTEL_BSP_MAX_QUEUE_SIZE", 2048),
		maxBatch: num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
	}
	b.maxBatch = min(b.maxBatch, b.maxQueue)
	return b
}

// batcher queues ended spans and exports them in batches from its own
// goroutine: every delay, as soon as a batch is full, and at flush and
// shutdown. A call's share is an append under an uncontended lock; a
// full queue drops the span (counted, reported through the OTel error
// handler), so that a slow or unreachable collector never holds a call.
type batcher struct {
	client otlptrace.Client
	res    *resourcepb.Resource
	schema string // the resource's schema URL
	cfg    batching

	stopped atomic.Bool
	// dropped counts the spans dropped since the start, never reset;
	// reported is how many of them were reported (used by run only).
	dropped  atomic.Int64
	reported int64
	store    arena // used by run only

	mu    sync.Mutex
	queue []*span
	spare []*span

	kick  chan struct{}
	flush chan flushReq
	stop  chan flushReq // buffered: Shutdown never waits for run to take it
	done  chan struct{}
	once  sync.Once
	// cancel ends the context of the scheduled exports, so that an
	// upload in flight when Shutdown runs out of time gives up and run
	// returns.
	cancel context.CancelFunc
}

type flushReq struct {
	ctx  context.Context
	done chan struct{}
}

func newBatcher(client otlptrace.Client, res *resource.Resource, cfg batching) *batcher {
	b := &batcher{client: client, cfg: cfg,
		res:   &resourcepb.Resource{Attributes: keyValues(res.Attributes())},
		queue: make([]*span, 0, cfg.maxBatch), spare: make([]*span, 0, cfg.maxBatch),
		kick: make(chan struct{}, 1), flush: make(chan flushReq), stop: make(chan flushReq, 1), done: make(chan struct{})}
	b.schema = res.SchemaURL()
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go b.run(ctx)
	return b
}

// add queues an ended, sampled span.
func (b *batcher) add(s *span) {
	b.mu.Lock()
	if b.stopped.Load() || len(b.queue) >= b.cfg.maxQueue {
		b.mu.Unlock()
		b.dropped.Add(1)
		return
	}
	b.queue = append(b.queue, s)
	n := len(b.queue)
	b.mu.Unlock()
	if n >= b.cfg.maxBatch {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// run exports on schedule, with ctx, until Shutdown.
func (b *batcher) run(ctx context.Context) {
	defer close(b.done)
	timer := time.NewTimer(b.cfg.delay)
	defer timer.Stop()
	for {
		select {
		case <-b.kick:
			b.export(ctx)
		case <-timer.C:
			b.export(ctx)
		case r := <-b.flush:
			b.export(r.ctx)
			close(r.done)
		case r := <-b.stop:
			b.export(r.ctx)
			b.mu.Lock()
			b.dropped.Add(int64(len(b.queue))) // not sent in time
			b.queue = nil
			b.mu.Unlock()
			b.report()
			close(r.done)
			return
		}
		timer.Reset(b.cfg.delay)
	}
}

// export sends what is queued, in batches of at most maxBatch, until
// less than a batch is left.
func (b *batcher) export(ctx context.Context) {
	for more := true; more && ctx.Err() == nil; {
		b.mu.Lock()
		all := b.queue
		b.queue, b.spare = b.spare, nil
		b.mu.Unlock()
		q := all
		for len(q) > 0 && ctx.Err() == nil {
			n := min(len(q), b.cfg.maxBatch)
			ectx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
			if err := b.client.UploadTraces(ectx, b.convert(q[:n])); err != nil {
				otel.Handle(fmt.Errorf("telemetry: exporting %d spans: %w", n, err))
			}
			cancel()
			q = q[n:]
		}
		b.dropped.Add(int64(len(q))) // not sent within ctx
		clear(all)                   // the spans go to the garbage collector
		b.mu.Lock()
		b.spare = all[:0]
		more = len(b.queue) >= b.cfg.maxBatch
		b.mu.Unlock()
	}
	b.report()
}

// report hands the spans dropped since the last report to the OTel
// error handler; run calls it.
func (b *batcher) report() {
	if d := b.dropped.Load(); d > b.reported {
		otel.Handle(fmt.Errorf("telemetry: %d spans dropped (export queue full, or not sent in time at shutdown)", d-b.reported))
		b.reported = d
	}
}

// ForceFlush exports what is queued.
func (b *batcher) ForceFlush(ctx context.Context) error {
	r := flushReq{ctx: ctx, done: make(chan struct{})}
	select {
	case b.flush <- r:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued, refuses spans from then on, and
// stops the client, within ctx.
func (b *batcher) Shutdown(ctx context.Context) error {
	var err error
	b.once.Do(func() {
		b.mu.Lock()
		b.stopped.Store(true)
		b.mu.Unlock()
		r := flushReq{ctx: ctx, done: make(chan struct{})}
		b.stop <- r // buffered, sent once: run takes it after what it is doing
		select {
		case <-r.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		// An export still in flight gives up, and run returns.
		b.cancel()
		err = errors.Join(err, b.client.Stop(ctx))
	})
	return err
}

// convert makes the OTLP request of spans: one resource, one scope
// entry per tracer. The messages of the spans and their attributes come
// from b.store, reused from batch to batch (run exports one batch at a
// time, and a client is done with a request when UploadTraces returns).
func (b *batcher) convert(spans []*span) []*tracepb.ResourceSpans {
	rs := &tracepb.ResourceSpans{Resource: b.res, SchemaUrl: b.schema}
	st := &b.store
	// The attributes of each span first, the deferred ones built into
	// st.built: how many there are sizes the rest.
	st.attrs, st.dropped = reuse(st.attrs, len(spans)), reuse(st.dropped, len(spans))
	built := st.built[:0]
	nattrs := 0
	for i, s := range spans {
		st.attrs[i], built, st.dropped[i] = s.exportAttrs(built)
		nattrs += len(st.attrs[i])
	}
	st.built = built
	st.spans, st.status, st.ids = reuse(st.spans, len(spans)), reuse(st.status, len(spans)), reuse(st.ids, 32*len(spans))
	st.kvs, st.ptrs, st.vals, st.strs = reuse(st.kvs, nattrs), reuse(st.ptrs, nattrs), reuse(st.vals, nattrs), reuse(st.strs, nattrs)
	a := *st // a cursor over the store
	var last *tracer
	var ss *tracepb.ScopeSpans
	for i, s := range spans {
		if s.t != last {
			last, ss = s.t, nil
			for _, x := range rs.ScopeSpans {
				if x.Scope == s.t.scope {
					ss = x
				}
			}
			if ss == nil {
				ss = &tracepb.ScopeSpans{Scope: s.t.scope, SchemaUrl: s.t.schemaURL, Spans: make([]*tracepb.Span, 0, len(spans))}
				rs.ScopeSpans = append(rs.ScopeSpans, ss)
			}
		}
		p := &st.spans[i]
		p.Status = &st.status[i]
		fillSpan(p, s, st.attrs[i], st.dropped[i], &a)
		ss.Spans = append(ss.Spans, p)
	}
	clear(st.attrs) // the spans' own attributes go with them
	clear(st.built)
	return []*tracepb.ResourceSpans{rs}
}

// reuse is s cleared to length n, reallocated if too short.
func reuse[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// arena holds the messages of one batch.
type arena struct {
	attrs   [][]attribute.KeyValue // each span's, as exported
	dropped []int
	built   []attribute.KeyValue // the deferred attributes, built
	spans   []tracepb.Span
	status  []tracepb.Status
	kvs     []commonpb.KeyValue
	ptrs    []*commonpb.KeyValue
	vals    []commonpb.AnyValue
	strs    []commonpb.AnyValue_StringValue
	ids     []byte
}

// keyValues converts attrs with the arena's messages while they last.
func (a *arena) keyValues(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	if len(attrs) > len(a.ptrs) {
		return keyValues(attrs)
	}
	out := a.ptrs[:len(attrs):len(attrs)]
	for i, kv := range attrs {
		p := &a.kvs[i]
		p.Key = string(kv.Key)
		if kv.Value.Type() == attribute.STRING {
			v, sv := &a.vals[i], &a.strs[i]
			sv.StringValue = kv.Value.AsString()
			v.Value = sv
			p.Value = v
		} else {
			p.Value = anyValue(kv.Value)
		}
		out[i] = p
	}
	a.ptrs, a.kvs, a.vals, a.strs = a.ptrs[len(attrs):], a.kvs[len(attrs):], a.vals[len(attrs):], a.strs[len(attrs):]
	return out
}

// fillSpan converts an ended span with its exported attributes (and how
// many were dropped) into p (whose Status is set), as the OTLP trace
// exporter does.
func fillSpan(p *tracepb.Span, s *span, attrs []attribute.KeyValue, dropped int, a *arena) {
	ids := a.ids[:32:32] // trace id, span id, parent span id
	a.ids = a.ids[32:]
	tid, sid := s.sc.TraceID(), s.sc.SpanID()
	copy(ids, tid[:])
	copy(ids[16:], sid[:])
	p.TraceId, p.SpanId = ids[:16:16], ids[16:24:24]
	if s.parent.IsValid() {
		copy(ids[24:], s.parent[:])
		p.ParentSpanId = ids[24:32:32]
	}
	p.TraceState = s.sc.TraceState().String()
	p.Name = s.name
	p.Kind = tracepb.Span_SpanKind(s.kind) // the enums agree
	p.StartTimeUnixNano, p.EndTimeUnixNano = unixNano(s.start), unixNano(s.end())
	p.Attributes = a.keyValues(attrs)
	p.DroppedAttributesCount = clamp(dropped)
	p.Flags = spanFlags(s.sc.TraceFlags(), s.remoteParent)
	switch s.code {
	case codes.Error:
		p.Status.Code = tracepb.Status_STATUS_CODE_ERROR
	case codes.Ok:
		p.Status.Code = tracepb.Status_STATUS_CODE_OK
	}
	r := s.rare
	if r == nil {
		return
	}
	p.Status.Message = r.status
	p.DroppedEventsCount = clamp(r.droppedEvents)
	p.DroppedLinksCount = clamp(r.droppedLinks)
	for _, e := range r.events {
		p.Events = append(p.Events, &tracepb.Span_Event{Name: e.name, TimeUnixNano: unixNano(e.time),
			Attributes: keyValues(e.attrs), DroppedAttributesCount: clamp(e.dropped)})
	}
	for _, l := range r.links {
		tid, sid := l.sc.TraceID(), l.sc.SpanID()
		p.Links = append(p.Links, &tracepb.Span_Link{TraceId: tid[:], SpanId: sid[:],
			TraceState: l.sc.TraceState().String(), Attributes: keyValues(l.attrs),
			DroppedAttributesCount: clamp(l.dropped), Flags: spanFlags(l.sc.TraceFlags(), l.sc.IsRemote())})
	}
}

// spanFlags are the W3C trace flags plus whether the parent is remote.
func spanFlags(f trace.TraceFlags, remote bool) uint32 {
	flags := uint32(f) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if remote {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return flags
}

// dedupe keeps the last value of each key, in the order keys were first
// set (the SDK's rule).
func dedupe(attrs []attribute.KeyValue) []attribute.KeyValue {
	if len(attrs) < 2 {
		return attrs
	}
	var seen map[attribute.Key]int
	out := attrs[:0:0]
	for i, a := range attrs {
		if seen == nil {
			dup := false
			for _, b := range attrs[:i] {
				if b.Key == a.Key {
					dup = true
					break
				}
			}
			if !dup {
				continue
			}
			seen = make(map[attribute.Key]int, len(attrs))
			out = make([]attribute.KeyValue, 0, len(attrs))
			for _, b := range attrs[:i] {
				seen[b.Key] = len(out)
				out = append(out, b)
			}
		}
		if j, ok := seen[a.Key]; ok {
			out[j] = a
			continue
		}
		seen[a.Key] = len(out)
		out = append(out, a)
	}
	if seen == nil {
		return attrs
	}
	return out
}

func unixNano(t time.Time) uint64 { return uint64(max(0, t.UnixNano())) }

func clamp(n int) uint32 { return uint32(min(max(n, 0), math.MaxUint32)) }

func keyValues(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, len(attrs))
	for i, a := range attrs {
		out[i] = &commonpb.KeyValue{Key: string(a.Key), Value: anyValue(a.Value)}
	}
	return out
}

// anyValue converts an attribute value, as the OTLP exporters do.
func anyValue(v attribute.Value) *commonpb.AnyValue {
	av := &commonpb.AnyValue{}
	arr := func(n int, at func(int) *commonpb.AnyValue) {
		vals := make([]*commonpb.AnyValue, n)
		for i := range vals {
			vals[i] = at(i)
		}
		av.Value = &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vals}}
	}
	switch v.Type() {
	case attribute.BOOL:
		av.Value = &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}
	case attribute.INT64:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}
	case attribute.FLOAT64:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}
	case attribute.STRING:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: v.AsString()}
	case attribute.BYTESLICE:
		av.Value = &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}
	case attribute.BOOLSLICE:
		s := v.AsBoolSlice()
		arr(len(s), func(i int) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: s[i]}}
		})
	case attribute.INT64SLICE:
		s := v.AsInt64Slice()
		arr(len(s), func(i int) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: s[i]}}
		})
	case attribute.FLOAT64SLICE:
		s := v.AsFloat64Slice()
		arr(len(s), func(i int) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: s[i]}}
		})
	case attribute.STRINGSLICE:
		s := v.AsStringSlice()
		arr(len(s), func(i int) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s[i]}}
		})
	case attribute.SLICE:
		s := v.AsSlice()
		arr(len(s), func(i int) *commonpb.AnyValue { return anyValue(s[i]) })
	case attribute.MAP:
		av.Value = &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: keyValues(v.AsMap())}}
	case attribute.EMPTY:
	default:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: "INVALID"}
	}
	return av
}
