package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// fakeClient is an OTLP client that keeps what it is sent; with block
// set, an upload waits for block or its context.
type fakeClient struct {
	mu      sync.Mutex
	got     []*tracepb.ResourceSpans
	block   chan struct{}
	stopped bool
}

func (c *fakeClient) Start(context.Context) error { return nil }

func (c *fakeClient) Stop(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return nil
}

func (c *fakeClient) UploadTraces(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	if c.block != nil {
		select {
		case <-c.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, rs...)
	return nil
}

// spans are the spans received, by name.
func (c *fakeClient) spans() map[string]*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, rs := range c.got {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out[s.Name] = s
			}
		}
	}
	return out
}

var slowBatching = batching{delay: time.Hour, timeout: time.Second, maxQueue: 64, maxBatch: 16}

func newTestProvider(t *testing.T, s sdktrace.Sampler, b batching) (*tracerProvider, *fakeClient) {
	t.Helper()
	c := &fakeClient{}
	res := resource.NewSchemaless(attribute.String("service.name", "svc"))
	tp := newTracerProvider(s, newBatcher(c, res, b))
	t.Cleanup(func() { tp.exp.Shutdown(context.Background()) })
	return tp, c
}

func attrsOf(s *tracepb.Span) map[string]any {
	out := map[string]any{}
	for _, kv := range s.Attributes {
		if v, ok := kv.Value.Value.(*commonpb.AnyValue_StringValue); ok {
			out[kv.Key] = v.StringValue
		} else {
			out[kv.Key] = kv.Value.String()
		}
	}
	return out
}

func TestTracerExportsSpansWithTheirLinks(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.ParentBased(sdktrace.AlwaysSample()), slowBatching)
	tr := tp.Tracer(ScopeName)
	ctx, parent := tr.Start(t.Context(), "tools/call echo", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("mcp.method.name", "tools/call")))
	_, child := tr.Start(ctx, "decide tool_call")
	child.SetAttributes(attribute.String("a", "1"), attribute.String("b", "2"), attribute.String("a", "3"), attribute.KeyValue{})
	child.SetStatus(codes.Error, "denied")
	child.End()
	child.SetAttributes(attribute.String("late", "x")) // after End: ignored
	start := time.Unix(100, 0)
	_, timed := tr.Start(ctx, "decide network", trace.WithTimestamp(start))
	timed.End(trace.WithTimestamp(start.Add(1500 * time.Nanosecond)))
	parent.SetStatus(codes.Ok, "ignored")
	parent.SetStatus(codes.Error, "too late: Ok is final")
	parent.End()
	parent.End() // a second End changes nothing
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}

	if len(c.got) != 1 {
		t.Fatalf("%d resource spans, want 1 batch", len(c.got))
	}
	rs := c.got[0]
	if got := rs.Resource.Attributes[0]; got.Key != "service.name" || got.Value.GetStringValue() != "svc" {
		t.Errorf("resource %v", rs.Resource)
	}
	if len(rs.ScopeSpans) != 1 || rs.ScopeSpans[0].Scope.Name != ScopeName || len(rs.ScopeSpans[0].Spans) != 3 {
		t.Fatalf("scope spans %v", rs.ScopeSpans)
	}
	got := c.spans()
	p, d, n := got["tools/call echo"], got["decide tool_call"], got["decide network"]
	if p == nil || d == nil || n == nil {
		t.Fatalf("spans %v", got)
	}
	psc := parent.SpanContext()
	if hex.EncodeToString(p.SpanId) != psc.SpanID().String() || hex.EncodeToString(p.TraceId) != psc.TraceID().String() {
		t.Errorf("parent ids %x/%x, span context %s", p.TraceId, p.SpanId, psc.SpanID())
	}
	if p.ParentSpanId != nil || p.Kind != tracepb.Span_SPAN_KIND_SERVER || p.Status.Code != tracepb.Status_STATUS_CODE_OK || p.Status.Message != "" {
		t.Errorf("parent %v", p)
	}
	for _, s := range []*tracepb.Span{d, n} {
		if string(s.ParentSpanId) != string(p.SpanId) || string(s.TraceId) != string(p.TraceId) || s.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
			t.Errorf("%s: parent %x trace %x kind %v", s.Name, s.ParentSpanId, s.TraceId, s.Kind)
		}
	}
	if diff := cmp.Diff(map[string]any{"mcp.method.name": "tools/call"}, attrsOf(p)); diff != "" {
		t.Errorf("parent attributes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"a": "3", "b": "2"}, attrsOf(d)); diff != "" {
		t.Errorf("child attributes (-want +got):\n%s", diff)
	}
	if len(d.Attributes) != 2 || d.Attributes[0].Key != "a" {
		t.Errorf("a key set twice must keep its first place and last value: %v", d.Attributes)
	}
	if d.Status.Code != tracepb.Status_STATUS_CODE_ERROR || d.Status.Message != "denied" {
		t.Errorf("child status %v", d.Status)
	}
	if n.StartTimeUnixNano != uint64(start.UnixNano()) || n.EndTimeUnixNano-n.StartTimeUnixNano != 1500 {
		t.Errorf("timed span %d-%d", n.StartTimeUnixNano, n.EndTimeUnixNano)
	}
	if p.EndTimeUnixNano < p.StartTimeUnixNano || p.StartTimeUnixNano == 0 {
		t.Errorf("parent times %d-%d", p.StartTimeUnixNano, p.EndTimeUnixNano)
	}
	const sampledLocal = uint32(trace.FlagsSampled) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if p.Flags != sampledLocal || d.Flags != sampledLocal {
		t.Errorf("flags %#x %#x, want %#x", p.Flags, d.Flags, sampledLocal)
	}
}

func TestTracerContinuesARemoteParent(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.ParentBased(sdktrace.AlwaysSample()), slowBatching)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("vendor=x")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	_, s := tp.Tracer(ScopeName).Start(trace.ContextWithRemoteSpanContext(t.Context(), remote), "tools/call echo")
	s.End()

	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true})
	ctx, out := tp.Tracer(ScopeName).Start(trace.ContextWithRemoteSpanContext(t.Context(), unsampled), "sampled out")
	if out.IsRecording() || out.SpanContext().IsSampled() || out.SpanContext().TraceID() != tid || !out.SpanContext().IsValid() {
		t.Errorf("a child of an unsampled parent: recording %v, context %+v", out.IsRecording(), out.SpanContext())
	}
	_, grandchild := tp.Tracer(ScopeName).Start(ctx, "also sampled out")
	if grandchild.IsRecording() || grandchild.SpanContext().TraceID() != tid {
		t.Errorf("grandchild %+v", grandchild.SpanContext())
	}
	out.End()
	grandchild.End()
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}

	got := c.spans()
	if len(got) != 1 {
		t.Fatalf("spans %v: only the sampled one must be exported", got)
	}
	p := got["tools/call echo"]
	if hex.EncodeToString(p.TraceId) != tid.String() || hex.EncodeToString(p.ParentSpanId) != sid.String() || p.TraceState != "vendor=x" {
		t.Errorf("span trace %x parent %x state %q: the remote parent was not continued", p.TraceId, p.ParentSpanId, p.TraceState)
	}
	if want := uint32(trace.FlagsSampled) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK|tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK); p.Flags != want {
		t.Errorf("flags %#x, want %#x", p.Flags, want)
	}
}

func TestTracerNeverSampleRecordsNothing(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.NeverSample(), slowBatching)
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	if s.IsRecording() || s.SpanContext().IsSampled() || !s.SpanContext().IsValid() {
		t.Errorf("sampled-out span: recording %v, context %+v", s.IsRecording(), s.SpanContext())
	}
	s.End()
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(c.got) != 0 {
		t.Errorf("exported %v", c.got)
	}
}

func TestTracerLimitsAndEvents(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.AlwaysSample(), slowBatching)
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	for i := range maxSpanAttrs + 3 {
		s.SetAttributes(attribute.Int("k", i), attribute.Int("k"+string(rune('a'+i%26)), i))
	}
	s.RecordError(errors.New("boom"))
	s.AddEvent("e", trace.WithAttributes(attribute.Bool("b", true)))
	s.SetName("y")
	s.End()
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := c.spans()["y"]
	if p == nil {
		t.Fatalf("spans %v", c.spans())
	}
	// 27 distinct keys set again and again: within the limit, which is
	// on keys, and each keeps its last value (the SDK's rule).
	if p.DroppedAttributesCount != 0 || len(p.Attributes) != 27 {
		t.Errorf("%d attributes, %d dropped; want the 27 keys, none dropped", len(p.Attributes), p.DroppedAttributesCount)
	}
	for _, kv := range p.Attributes {
		if kv.Key == "k" && kv.Value.GetIntValue() != maxSpanAttrs+2 {
			t.Errorf("k = %v, want its last value %d", kv.Value, maxSpanAttrs+2)
		}
	}
	if len(p.Events) != 2 || p.Events[0].Name != "exception" || p.Events[1].Name != "e" {
		t.Fatalf("events %v", p.Events)
	}
	if m := attrsOf(&tracepb.Span{Attributes: p.Events[0].Attributes}); m["exception.message"] != "boom" || m["exception.type"] != "*errors.errorString" {
		t.Errorf("exception event %v", m)
	}
}

func TestTracerAttributeLimitIsOnDistinctKeys(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.AlwaysSample(), slowBatching)
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x", trace.WithAttributes(attribute.Int("n", -1)))
	for i := range 2 * maxSpanAttrs {
		s.SetAttributes(attribute.Int("n", i)) // the same key, again and again
	}
	s.SetAttributes(attribute.String("last", "kept"))
	for i := range maxSpanAttrs + 5 {
		s.SetAttributes(attribute.Int("k"+strconv.Itoa(i), i))
	}
	s.SetAttributes(attribute.Int("n", 7)) // at the limit, a key set before still changes
	s.End()
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := c.spans()["x"]
	if len(p.Attributes) != maxSpanAttrs {
		t.Errorf("%d attributes, want the limit %d", len(p.Attributes), maxSpanAttrs)
	}
	// n, last and 126 of the k*: 7 of them dropped.
	if p.DroppedAttributesCount != 7 {
		t.Errorf("dropped %d, want 7", p.DroppedAttributesCount)
	}
	got := map[string]int64{}
	for _, kv := range p.Attributes {
		got[kv.Key] = kv.Value.GetIntValue()
		if kv.Key == "last" && kv.Value.GetStringValue() != "kept" {
			t.Errorf("last = %v", kv.Value)
		}
	}
	if _, ok := got["last"]; !ok || got["n"] != 7 || got["k125"] != 125 {
		t.Errorf("n = %d, last set %v, k125 = %d; want 7, true, 125", got["n"], ok, got["k125"])
	}
	if _, ok := got["k126"]; ok {
		t.Error("a key past the limit was kept")
	}
}

func TestTracerLinksKeepACopyWithinTheLimit(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.AlwaysSample(), slowBatching)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
	attrs := []attribute.KeyValue{attribute.String("who", "first"), {}}
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x", trace.WithLinks(trace.Link{SpanContext: sc, Attributes: attrs}))
	many := make([]attribute.KeyValue, maxSpanAttrs+3)
	for i := range many {
		many[i] = attribute.Int("k"+strconv.Itoa(i), i)
	}
	s.AddLink(trace.Link{SpanContext: sc, Attributes: many})
	ts, _ := trace.ParseTraceState("vendor=v")
	s.AddLink(trace.Link{SpanContext: trace.SpanContext{}.WithTraceState(ts)})
	s.End()
	attrs[0] = attribute.String("who", "changed after End") // the caller's slice, reused
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := c.spans()["x"]
	if len(p.Links) != 3 {
		t.Fatalf("%d links, want 3 (one with only a trace state)", len(p.Links))
	}
	if diff := cmp.Diff(map[string]any{"who": "first"}, attrsOf(&tracepb.Span{Attributes: p.Links[0].Attributes})); diff != "" {
		t.Errorf("link attributes (-want +got):\n%s", diff)
	}
	if l := p.Links[1]; len(l.Attributes) != maxSpanAttrs || l.DroppedAttributesCount != 3 {
		t.Errorf("link of %d attributes: %d kept, %d dropped; want %d, 3", len(many), len(l.Attributes), l.DroppedAttributesCount, maxSpanAttrs)
	}
	if p.Links[2].TraceState != "vendor=v" {
		t.Errorf("trace state %q", p.Links[2].TraceState)
	}
}

func TestRecordErrorStackTraceOnlyWhenAsked(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.AlwaysSample(), slowBatching)
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	s.RecordError(errors.New("plain"))
	s.RecordError(errors.New("traced"), trace.WithStackTrace(true))
	s.End()
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	ev := c.spans()["x"].Events
	if len(ev) != 2 {
		t.Fatalf("%d events, want 2", len(ev))
	}
	plain := attrsOf(&tracepb.Span{Attributes: ev[0].Attributes})
	traced := attrsOf(&tracepb.Span{Attributes: ev[1].Attributes})
	if _, ok := plain["exception.stacktrace"]; ok {
		t.Error("a stack trace not asked for")
	}
	if st, _ := traced["exception.stacktrace"].(string); !strings.Contains(st, "TestRecordErrorStackTraceOnlyWhenAsked") {
		t.Errorf("stack trace %q, want this test's frame", st)
	}
}

// A span written from several goroutines while it ends, and after, is
// exported as it was at End (run with -race).
func TestSpanUsedConcurrentlyAndAfterEnd(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.AlwaysSample(), slowBatching)
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s.SetAttributes(attribute.Int("g"+strconv.Itoa(g), i))
				s.AddEvent("e")
				s.AddLink(trace.Link{Attributes: []attribute.KeyValue{attribute.Int("i", i)}})
				s.SetStatus(codes.Error, "x")
				s.SetName("x")
				_ = s.IsRecording()
				if g == 0 && i == 100 {
					s.End()
				}
			}
		})
	}
	wg.Wait()
	if s.IsRecording() {
		t.Error("recording after End")
	}
	sc := s.SpanContext()
	s.SetName("renamed")
	s.SetStatus(codes.Ok, "")
	s.SetAttributes(attribute.String("late", "x"))
	s.AddEvent("late")
	s.RecordError(errors.New("late"))
	s.End() // a second End is ignored
	if !s.SpanContext().Equal(sc) || s.TracerProvider() != trace.TracerProvider(tp) {
		t.Error("the span's context or provider changed after End")
	}
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans := c.spans()
	p := spans["x"]
	if len(spans) != 1 || p == nil {
		t.Fatalf("spans %v, want x once", spans)
	}
	if p.Status.Code != tracepb.Status_STATUS_CODE_ERROR || attrsOf(p)["late"] != nil {
		t.Errorf("changed after End: status %v, attributes %v", p.Status, attrsOf(p))
	}
	if len(p.Events) > maxSpanEvents || len(p.Links) > maxSpanLinks || p.EndTimeUnixNano < p.StartTimeUnixNano {
		t.Errorf("%d events, %d links, times %d-%d", len(p.Events), len(p.Links), p.StartTimeUnixNano, p.EndTimeUnixNano)
	}
	for _, e := range p.Events {
		if e.Name != "e" {
			t.Errorf("event %q after End", e.Name)
		}
	}
}

func TestNonRecordingSpanIsANoOpWithItsContext(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.NeverSample(), slowBatching)
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	sc := s.SpanContext()
	s.SetAttributes(attribute.String("a", "b"))
	s.AddEvent("e")
	s.AddLink(trace.Link{SpanContext: sc})
	s.RecordError(errors.New("x"))
	s.SetStatus(codes.Error, "x")
	s.SetName("y")
	s.End()
	if s.IsRecording() || !s.SpanContext().Equal(sc) || !sc.IsValid() || sc.IsSampled() {
		t.Errorf("recording %v, context %+v", s.IsRecording(), s.SpanContext())
	}
	if s.TracerProvider() != trace.TracerProvider(tp) {
		t.Error("a non-recording span's provider is not its tracer's")
	}
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := c.spans(); len(got) != 0 {
		t.Errorf("exported %v", got)
	}
}

func TestBatcherExportsAFullBatchAtOnce(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.AlwaysSample(), batching{delay: time.Hour, timeout: time.Second, maxQueue: 8, maxBatch: 2})
	for range 2 {
		_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
		s.End()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.got)
		c.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a full batch was not exported before the schedule delay")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatcherDropsWhenFullAndShutsDownInTime(t *testing.T) {
	c := &fakeClient{block: make(chan struct{})}
	// A batch larger than the queue: no export starts before Shutdown,
	// so that what is dropped does not depend on the export goroutine.
	b := newBatcher(c, resource.Empty(), batching{delay: time.Hour, timeout: time.Hour, maxQueue: 3, maxBatch: 4})
	tp := newTracerProvider(sdktrace.AlwaysSample(), b)
	for range 5 {
		_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
		s.End() // never blocks, even with the collector stuck
	}
	if got := b.dropped.Load(); got != 2 {
		t.Errorf("dropped %d, want 2 beyond the queue of 3", got)
	}
	close(c.block)
	if err := b.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.dropped.Load(); got != 2 {
		t.Errorf("dropped %d after an export, want the count kept at 2", got)
	}
	c.block = make(chan struct{}) // run is idle: no upload reads it now
	c.mu.Lock()
	exported := len(c.got)
	c.mu.Unlock()
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	s.End()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	// The collector never answers (c.block is never closed): Shutdown
	// returns all the same, the stuck upload given up with ctx.
	shut := make(chan struct{})
	go func() { b.Shutdown(ctx); close(shut) }()
	select {
	case <-shut:
	case <-time.After(time.Minute): // a hang guard, not a speed bound
		t.Fatal("Shutdown hung on a stuck collector")
	}
	c.mu.Lock()
	stopped, got := c.stopped, len(c.got)
	c.mu.Unlock()
	if !stopped {
		t.Error("client not stopped")
	}
	if got != exported {
		t.Errorf("%d batches exported through a collector that never answered, want %d", got, exported)
	}
	if _, s := tp.Tracer(ScopeName).Start(t.Context(), "after"); s.IsRecording() {
		t.Error("a span started after shutdown records")
	}
}

// blockingClient is an OTLP client whose uploads wait for their context,
// as with a collector that never answers; uploading is closed at the
// first.
type blockingClient struct {
	fakeClient
	once      sync.Once
	uploading chan struct{}
}

func (c *blockingClient) UploadTraces(ctx context.Context, _ []*tracepb.ResourceSpans) error {
	c.once.Do(func() { close(c.uploading) })
	<-ctx.Done()
	return ctx.Err()
}

func TestBatcherShutdownStopsItsGoroutineWithAnUploadStuck(t *testing.T) {
	c := &blockingClient{uploading: make(chan struct{})}
	b := newBatcher(c, resource.Empty(), batching{delay: time.Millisecond, timeout: time.Hour, maxQueue: 8, maxBatch: 8})
	tp := newTracerProvider(sdktrace.AlwaysSample(), b)
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	s.End()
	select {
	case <-c.uploading: // a scheduled export, stuck for the hour of its timeout
	case <-time.After(5 * time.Second):
		t.Fatal("no export started")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want its deadline exceeded", err)
	}
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the export goroutine still runs after Shutdown")
	}
}

func TestSamplerFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for name, tc := range map[string]struct {
		env  func(string) string
		want string
	}{
		"default":        {env(), DefaultSampler().Description()},
		"unknown":        {env("OTEL_TRACES_SAMPLER", "xray"), DefaultSampler().Description()},
		"parentbased_on": {env("OTEL_TRACES_SAMPLER", "parentbased_always_on"), sdktrace.ParentBased(sdktrace.AlwaysSample()).Description()},
		"always_off":     {env("OTEL_TRACES_SAMPLER", "always_off"), "AlwaysOffSampler"},
		"ratio":          {env("OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.25"), "TraceIDRatioBased{0.25}"},
		"ratio/bad-arg":  {env("OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "2"), "TraceIDRatioBased{1}"},
		"parentbased/on": {env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.5"), "ParentBased{root:TraceIDRatioBased{0.5}"},
	} {
		t.Run(name, func(t *testing.T) {
			got := samplerFromEnv(tc.env).Description()
			if len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("sampler %q, want %q...", got, tc.want)
			}
		})
	}
}

func TestBatchingFromEnv(t *testing.T) {
	env := map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500", "OTEL_BSP_EXPORT_TIMEOUT": "x"}
	got := batchingFromEnv(func(k string) string { return env[k] })
	want := batching{delay: 50 * time.Millisecond, timeout: 30 * time.Second, maxQueue: 100, maxBatch: 100}
	if got != want {
		t.Errorf("batching %+v, want %+v", got, want)
	}
}

// BenchmarkTracer is the spans of one tools/call (a server span and
// three children, with attributes as the server sets them), through this
// package's tracer ("own", exporting to a client that keeps nothing,
// the conversion to OTLP included) and through the SDK's ("sdk",
// exporting to an exporter that does nothing).
func BenchmarkTracer(b *testing.B) {
	attrs := []attribute.KeyValue{attribute.String("mcp.method.name", "tools/call"), attribute.String("jsonrpc.request.id", "7"),
		attribute.String("gen_ai.tool.name", "echo"), attribute.String("gen_ai.operation.name", "execute_tool")}
	decision := []attribute.KeyValue{attribute.String(AttrDecisionID, "d"), attribute.String(AttrDecisionKind, "tool_call"),
		attribute.String(AttrDecisionResult, "allow"), attribute.String(AttrSecurityDecision, "allow"),
		attribute.String(AttrDecisionPath, "mcp/tools/decision"), attribute.String(AttrSecurityPolicyID, "mcp/tools/decision"),
		attribute.String(AttrToolName, "echo")}
	run := func(b *testing.B, tp trace.TracerProvider) {
		tr := tp.Tracer(ScopeName)
		kind := trace.WithSpanKind(trace.SpanKindServer)
		b.ReportAllocs()
		for b.Loop() {
			ctx, s := tr.Start(context.Background(), "tools/call echo", kind)
			s.SetAttributes(attrs...)
			_, v := tr.Start(ctx, "validate_arguments")
			v.End()
			_, d := tr.Start(ctx, "decide tool_call")
			d.SetAttributes(decision...)
			d.End()
			_, h := tr.Start(ctx, "execute_tool echo")
			h.SetAttributes(attrs[2:]...)
			h.End()
			s.End()
		}
	}
	b.Run("own", func(b *testing.B) {
		// Spans the loop makes faster than they are converted are
		// dropped, and each drop reported: not here.
		defer otel.SetErrorHandler(otel.GetErrorHandler())
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
		tp := newTracerProvider(sdktrace.ParentBased(sdktrace.AlwaysSample()),
			newBatcher(discardClient{}, resource.Empty(), batchingFromEnv(func(string) string { return "" })))
		defer tp.exp.Shutdown(context.Background())
		run(b, tp)
	})
	b.Run("sdk", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		defer tp.Shutdown(context.Background())
		run(b, tp)
	})
}

type discardClient struct{}

func (discardClient) Start(context.Context) error                                  { return nil }
func (discardClient) Stop(context.Context) error                                   { return nil }
func (discardClient) UploadTraces(context.Context, []*tracepb.ResourceSpans) error { return nil }

func TestAuditThroughTheOwnTracer(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.ParentBased(sdktrace.AlwaysSample()), slowBatching)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	next := &fakeAuditor{}
	a := Audit(next, tp, mp, audit.NewRedactor([]byte("k")))
	ctx, parent := tp.Tracer(ScopeName).Start(t.Context(), "tools/call fetch")
	dctx, decide := tp.Tracer(ScopeName).Start(ctx, SpanDecide(audit.KindToolCall))
	if err := a.Log(dctx, audit.Record{DecisionID: "d1", Path: "mcp/tools/decision", Kind: audit.KindToolCall, Tool: "fetch", Result: audit.ResultAllow}); err != nil {
		t.Fatal(err)
	}
	decide.SetAttributes(attribute.String("later", "x"))
	decide.End()
	if err := a.Log(ctx, audit.Record{DecisionID: "d2", ParentDecisionID: "d1", Path: "mcp/network/decision", Kind: audit.KindNetwork,
		Result: audit.ResultDeny, Reasons: []string{"no"}, Input: map[string]any{"host": "example.com", "port": 443}}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := c.spans()
	d, n := got["decide tool_call"], got["decide network"]
	if d == nil || n == nil {
		t.Fatalf("spans %v", got)
	}
	want := map[string]any{AttrDecisionID: "d1", AttrDecisionKind: "tool_call", AttrDecisionResult: "allow", AttrSecurityDecision: "allow",
		AttrDecisionPath: "mcp/tools/decision", AttrSecurityPolicyID: "mcp/tools/decision", AttrToolName: "fetch", "later": "x"}
	if diff := cmp.Diff(want, attrsOf(d)); diff != "" {
		t.Errorf("decision span attributes (-want +got):\n%s", diff)
	}
	if m := attrsOf(n); m[AttrDecisionID] != "d2" || m[AttrTarget+"host"] != "example.com" || m[AttrDecisionResult] != "deny" {
		t.Errorf("network span attributes %v", m)
	}
	if string(n.ParentSpanId) != string(got["tools/call fetch"].SpanId) {
		t.Error("the guard's span is not a child of the span in ctx")
	}
	if rec := next.recs[1]; rec.SpanID != hex.EncodeToString(n.SpanId) || rec.TraceID != hex.EncodeToString(n.TraceId) {
		t.Errorf("record ids %s/%s, span %x/%x", rec.TraceID, rec.SpanID, n.TraceId, n.SpanId)
	}
}

func TestDefaultSamplerDecidesAsTheSDKs(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("vendor=x")
	sdk := DefaultSampler()
	for name, parent := range map[string]trace.SpanContext{
		"root":                 {},
		"local/sampled":        trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts}),
		"local/not-sampled":    trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceState: ts}),
		"remote/sampled":       trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}),
		"remote/not-sampled":   trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true, TraceState: ts}),
		"remote/random-bit-on": trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled | 0x2, Remote: true}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := trace.ContextWithSpanContext(t.Context(), parent)
			want := sdk.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: "x"})
			got := sampledUnlessLocalParentIsNot(parent)
			if got.Decision != want.Decision || got.Tracestate.String() != want.Tracestate.String() || len(want.Attributes) != 0 {
				t.Errorf("decided %+v, the SDK %+v", got, want)
			}
		})
	}
	if tp := newTracerProvider(DefaultSampler(), nil); tp.sampler != nil {
		t.Error("the default sampler is not recognised")
	}
	if tp := newTracerProvider(sdktrace.ParentBased(sdktrace.AlwaysSample()), nil); tp.sampler == nil {
		t.Error("parentbased_always_on taken for the default: the client's flag would be ignored")
	}
	// A client's traceparent with the sampled flag off does not switch
	// the server's spans off by default.
	notSampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true})
	if d := sampledUnlessLocalParentIsNot(notSampled).Decision; d != sdktrace.RecordAndSample {
		t.Errorf("remote unsampled parent: %v, want sampled", d)
	}
	if tp := newTracerProvider(sdktrace.ParentBased(sdktrace.NeverSample()), nil); tp.sampler == nil {
		t.Error("parentbased_always_off taken for the default")
	}
}

func TestNowFollowsTheClock(t *testing.T) {
	prev := now()
	for range 1000 {
		before := time.Now()
		n := now()
		after := time.Now()
		if n.Round(0).Before(before.Round(0).Add(-time.Millisecond)) || n.Round(0).After(after.Round(0).Add(time.Millisecond)) {
			t.Fatalf("now %v, the clock %v to %v", n, before, after)
		}
		if n.Before(prev) {
			t.Fatalf("now went back from %v to %v", prev, n)
		}
		prev = n
	}
}

// countingSource is an AttributeSource that counts its builds.
type countingSource struct {
	kv     []attribute.KeyValue
	builds int
}

func (c *countingSource) AppendAttributes(dst []attribute.KeyValue) []attribute.KeyValue {
	c.builds++
	return append(dst, c.kv...)
}

func TestDeferredAttributes(t *testing.T) {
	src := func(kv ...attribute.KeyValue) *countingSource { return &countingSource{kv: kv} }
	for name, tc := range map[string]struct {
		set  func(s *span)
		want map[string]any
		// dropped is the exported count of dropped attributes.
		dropped uint32
	}{
		"deferred/two-sources": {
			set: func(s *span) {
				s.DeferAttributes(src(attribute.String("a", "1"), attribute.String("b", "1")))
				s.DeferAttributes(src(attribute.String("b", "2")))
			},
			want: map[string]any{"a": "1", "b": "2"},
		},
		"deferred/then-set-keeps-the-order": {
			set: func(s *span) {
				s.DeferAttributes(src(attribute.String("a", "1")))
				s.SetAttributes(attribute.String("a", "2"), attribute.String("b", "2"))
			},
			want: map[string]any{"a": "2", "b": "2"},
		},
		"set/then-deferred-keeps-the-order": {
			set: func(s *span) {
				s.SetAttributes(attribute.String("a", "1"))
				s.DeferAttributes(src(attribute.String("a", "2")))
			},
			want: map[string]any{"a": "2"},
		},
		"deferred/three-sources": {
			set: func(s *span) {
				s.DeferAttributes(src(attribute.String("a", "1")))
				s.DeferAttributes(src(attribute.String("b", "1")))
				s.DeferAttributes(src(attribute.String("a", "3"), attribute.String("c", "3")))
			},
			want: map[string]any{"a": "3", "b": "1", "c": "3"},
		},
		"deferred/invalid-dropped-silently": {
			set:  func(s *span) { s.DeferAttributes(src(attribute.KeyValue{}, attribute.String("a", "1"))) },
			want: map[string]any{"a": "1"},
		},
		"deferred/over-the-limit": {
			set: func(s *span) {
				kv := make([]attribute.KeyValue, maxSpanAttrs+3)
				for i := range kv {
					kv[i] = attribute.Int("k"+strconv.Itoa(i), i)
				}
				kv[maxSpanAttrs+1] = attribute.Int("k0", -1) // a key set before takes the value
				s.DeferAttributes(src(kv...))
			},
			dropped: 2,
		},
		"deferred/after-end-ignored": {
			set: func(s *span) {
				s.End()
				s.DeferAttributes(src(attribute.String("late", "x")))
			},
			want: map[string]any{},
		},
	} {
		t.Run(name, func(t *testing.T) {
			tp, c := newTestProvider(t, sdktrace.AlwaysSample(), slowBatching)
			_, sp := tp.Tracer(ScopeName).Start(t.Context(), "x")
			s := sp.(*span)
			tc.set(s)
			s.End()
			if err := tp.exp.ForceFlush(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := c.spans()["x"]
			if got == nil {
				t.Fatal("not exported")
			}
			if got.DroppedAttributesCount != tc.dropped {
				t.Errorf("dropped %d, want %d", got.DroppedAttributesCount, tc.dropped)
			}
			if tc.dropped > 0 {
				m := attrsOf(got)
				if len(got.Attributes) != maxSpanAttrs || m["k0"] != "int_value:-1" {
					t.Errorf("%d attributes, k0 %v", len(got.Attributes), m["k0"])
				}
				return
			}
			if diff := cmp.Diff(tc.want, attrsOf(got)); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeferredAttributesBuiltOnlyOnExport(t *testing.T) {
	tp, c := newTestProvider(t, sdktrace.AlwaysSample(), slowBatching)
	src := &countingSource{kv: []attribute.KeyValue{attribute.String("a", "1")}}
	_, s := tp.Tracer(ScopeName).Start(t.Context(), "x")
	s.(*span).DeferAttributes(src)
	s.End()
	if src.builds != 0 {
		t.Fatalf("built %d times before export", src.builds)
	}
	if err := tp.exp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if src.builds != 1 || attrsOf(c.spans()["x"])["a"] != "1" {
		t.Errorf("built %d times, exported %v", src.builds, attrsOf(c.spans()["x"]))
	}
}

// ctxKey is a context key of the tests.
type ctxKey struct{}

func TestStartsContextCarriesTheSpanAndTheParentsValues(t *testing.T) {
	if spanKey == nil {
		t.Fatal("the trace API's context key was not learned: spans fall back to context.WithValue")
	}
	for name, sampler := range map[string]sdktrace.Sampler{"recording": sdktrace.AlwaysSample(), "sampled-out": sdktrace.NeverSample()} {
		t.Run(name, func(t *testing.T) {
			tp, _ := newTestProvider(t, sampler, slowBatching)
			parent, cancel := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "v"))
			ctx, s := tp.Tracer(ScopeName).Start(parent, "x")
			defer s.End()
			if trace.SpanFromContext(ctx) != s || ctx.Value(ctxKey{}) != "v" {
				t.Errorf("span %v, value %v", trace.SpanFromContext(ctx), ctx.Value(ctxKey{}))
			}
			cctx, child := tp.Tracer(ScopeName).Start(ctx, "y")
			defer child.End()
			if trace.SpanFromContext(cctx) != child || child.SpanContext().TraceID() != s.SpanContext().TraceID() {
				t.Error("the child is not in its context, or not of its parent's trace")
			}
			if c, ok := child.(*span); ok && c.parent != s.SpanContext().SpanID() {
				t.Error("the child's parent is not the span in ctx")
			}
			cancel()
			if cctx.Err() != context.Canceled {
				t.Errorf("the span's context did not end with its parent: %v", cctx.Err())
			}
		})
	}
}

func TestTracerNewRootIgnoresTheParent(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	for name, tc := range map[string]struct {
		sampler sdktrace.Sampler
		flags   trace.TraceFlags
		sampled bool
	}{
		"default/under-an-unsampled-parent": {sdktrace.ParentBased(sdktrace.AlwaysSample()), 0, true},
		"parentbased-off/under-a-sampled":   {sdktrace.ParentBased(sdktrace.NeverSample()), trace.FlagsSampled, false},
	} {
		t.Run(name, func(t *testing.T) {
			tp, _ := newTestProvider(t, tc.sampler, slowBatching)
			parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: tc.flags, Remote: true})
			_, s := tp.Tracer(ScopeName).Start(trace.ContextWithRemoteSpanContext(t.Context(), parent), "x", trace.WithNewRoot())
			defer s.End()
			if s.SpanContext().TraceID() == tid || s.SpanContext().IsSampled() != tc.sampled || s.IsRecording() != tc.sampled {
				t.Errorf("new root: %+v, recording %v", s.SpanContext(), s.IsRecording())
			}
			if sp, ok := s.(*span); ok && sp.parent.IsValid() {
				t.Error("a new root has a parent")
			}
		})
	}
}
