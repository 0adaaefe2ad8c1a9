package telemetry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

type fakeAuditor struct {
	recs []audit.Record
	err  error
}

func (f *fakeAuditor) Log(_ context.Context, r audit.Record) error {
	f.recs = append(f.recs, r)
	return f.err
}

func TestAuditSpansAndIDs(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	next := &fakeAuditor{}
	a := Audit(next, tp, mp, audit.NewRedactor([]byte("k")))

	ctx, parent := tp.Tracer("t").Start(t.Context(), "execute_tool fetch")
	secret := "Bearer abcdefghijklmnopqrstuvwxyz0123456789"
	err := a.Log(ctx, audit.Record{DecisionID: "d1", ParentDecisionID: "d0", Path: "mcp/network/decision", Kind: audit.KindNetwork,
		Tool: "fetch", Result: audit.ResultDeny, Reasons: []string{"refused " + secret}, DurationNS: 1500,
		Input: map[string]any{"host": "example.com", "ip": "10.0.0.1", "port": 443, "argv": []string{secret}}})
	if err != nil {
		t.Fatal(err)
	}
	parent.End()
	ended := spans.Ended()
	if len(ended) != 2 || ended[0].Name() != "decide network" {
		t.Fatalf("spans %v", ended)
	}
	s := ended[0]
	if s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("decision span is not a child of the span in ctx")
	}
	if got := next.recs[0]; got.SpanID != s.SpanContext().SpanID().String() || got.TraceID != s.SpanContext().TraceID().String() {
		t.Errorf("record ids %s/%s, span %s", got.TraceID, got.SpanID, s.SpanContext().SpanID())
	}
	if got := next.recs[0].TraceOrigin; got != audit.TraceOriginServer {
		t.Errorf("trace_origin %q in a trace the server began", got)
	}
	if err := a.Log(audit.WithClientTrace(ctx), audit.Record{DecisionID: "d2", Kind: audit.KindToolResult}); err != nil {
		t.Fatal(err)
	}
	if got := next.recs[1].TraceOrigin; got != audit.TraceOriginClient {
		t.Errorf("trace_origin %q in a trace continued from a client", got)
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	for k, want := range map[attribute.Key]string{AttrDecisionID: "d1", AttrParentDecisionID: "d0", AttrDecisionResult: "deny",
		AttrSecurityDecision: "deny", AttrTarget + "host": "example.com", AttrTarget + "ip": "10.0.0.1"} {
		if got := attrs[k].Emit(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if attrs[AttrTarget+"port"].AsInt64() != 443 {
		t.Errorf("port %v", attrs[AttrTarget+"port"])
	}
	for _, kv := range s.Attributes() {
		if strings.Contains(kv.Value.Emit(), "abcdefghijklmnopqrstuvwxyz") {
			t.Errorf("secret in attribute %s: %s", kv.Key, kv.Value.Emit())
		}
	}
	if s.EndTime().Sub(s.StartTime()) != 1500 {
		t.Errorf("span lasts %v, want the decision's 1.5µs", s.EndTime().Sub(s.StartTime()))
	}
}

func TestAuditToolCallAnnotatesItsSpanAndCountsFailures(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	next := &fakeAuditor{err: errors.New("disk full")}
	a := Audit(next, tp, mp, nil)

	ctx, dec := tp.Tracer("t").Start(t.Context(), "decide tool_call")
	if err := a.Log(ctx, audit.Record{DecisionID: "d1", Kind: audit.KindToolCall, Result: audit.ResultAllow}); err == nil {
		t.Fatal("the write failure was swallowed")
	}
	dec.End()
	if n := len(spans.Ended()); n != 1 {
		t.Fatalf("%d spans, want only the pipeline's", n)
	}
	if next.recs[0].SpanID != dec.SpanContext().SpanID().String() {
		t.Error("tool_call record does not carry its decision span")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			found[m.Name] = true
			if m.Name == MetricAuditFailures {
				if sum := m.Data.(metricdata.Sum[int64]); sum.DataPoints[0].Value != 1 {
					t.Errorf("failures = %d", sum.DataPoints[0].Value)
				}
			}
		}
	}
	for _, want := range []string{MetricAuditFailures, MetricDecisions, MetricDecisionDuration} {
		if !found[want] {
			t.Errorf("no metric %s", want)
		}
	}
}

// TestAuditDecisionCounts: mcp_secure.decisions counts every decision
// by kind and result (cumulative, collection after collection), and
// tool_result records go to the tool duration by tool and status.
func TestAuditDecisionCounts(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	a := Audit(&fakeAuditor{}, tp, mp, nil)
	type point struct{ a, b string }
	collect := func() (decisions map[point]int64, tools map[point]uint64) {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(t.Context(), &rm); err != nil {
			t.Fatal(err)
		}
		decisions, tools = map[point]int64{}, map[point]uint64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch m.Name {
				case MetricDecisions:
					sum := m.Data.(metricdata.Sum[int64])
					if !sum.IsMonotonic {
						t.Errorf("%s is not monotonic", m.Name)
					}
					for _, dp := range sum.DataPoints {
						k, _ := dp.Attributes.Value(AttrDecisionKind)
						r, _ := dp.Attributes.Value(AttrDecisionResult)
						decisions[point{k.AsString(), r.AsString()}] = dp.Value
					}
				case MetricToolDuration:
					for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
						n, _ := dp.Attributes.Value(AttrToolName)
						s, _ := dp.Attributes.Value(AttrToolStatus)
						tools[point{n.AsString(), s.AsString()}] += dp.Count
					}
				}
			}
		}
		return decisions, tools
	}
	log := func(r audit.Record) {
		t.Helper()
		if err := a.Log(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		log(audit.Record{Kind: audit.KindNetwork, Result: audit.ResultDeny})
	}
	log(audit.Record{Kind: audit.KindToolCall, Result: audit.ResultAllow})
	log(audit.Record{Kind: audit.KindToolResult, Tool: "fetch", Status: audit.StatusOK})
	log(audit.Record{Kind: audit.KindSummary})
	decisions, tools := collect()
	want := map[point]int64{{audit.KindNetwork, audit.ResultDeny}: 2, {audit.KindToolCall, audit.ResultAllow}: 1}
	if len(decisions) != len(want) {
		t.Errorf("decisions %v, want %v", decisions, want)
	}
	for p, n := range want {
		if decisions[p] != n {
			t.Errorf("decisions %v = %d, want %d", p, decisions[p], n)
		}
	}
	if tools[point{"fetch", audit.StatusOK}] != 1 || len(tools) != 1 {
		t.Errorf("tool durations %v", tools)
	}
	log(audit.Record{Kind: audit.KindNetwork, Result: audit.ResultDeny})
	if decisions, _ = collect(); decisions[point{audit.KindNetwork, audit.ResultDeny}] != 3 {
		t.Errorf("after one more: %v, want network/deny 3 (cumulative)", decisions)
	}
}

// labelingAuditor labels its records as *audit.Logger does.
type labelingAuditor struct {
	fakeAuditor
	labels map[string]string
}

func (l *labelingAuditor) Label(key string) string { return l.labels[key] }

func TestAuditSpansCarryTheBundleRevision(t *testing.T) {
	tests := map[string]struct {
		next Auditor
		rec  audit.Record
		want string // "" means no attribute
	}{
		"label of the logger": {
			next: &labelingAuditor{labels: map[string]string{audit.LabelBundleRevision: "fleet-7"}},
			rec:  audit.Record{Kind: audit.KindFilesystem, Result: audit.ResultDeny},
			want: "fleet-7",
		},
		"label of the record first": {
			next: &labelingAuditor{labels: map[string]string{audit.LabelBundleRevision: "fleet-7"}},
			rec:  audit.Record{Kind: audit.KindCommand, Result: audit.ResultAllow, Labels: map[string]string{audit.LabelBundleRevision: "fleet-6"}},
			want: "fleet-6",
		},
		"revision that decided": {
			next: &labelingAuditor{labels: map[string]string{audit.LabelBundleRevision: "fleet-7"}},
			rec:  audit.Record{Kind: audit.KindNetwork, Result: audit.ResultAllow, Revision: new("fleet-6")},
			want: "fleet-6",
		},
		"no bundle": {
			next: &labelingAuditor{labels: map[string]string{"service": "mcp-secure"}},
			rec:  audit.Record{Kind: audit.KindNetwork, Result: audit.ResultAllow},
		},
		"no labels": {
			next: &fakeAuditor{},
			rec:  audit.Record{Kind: audit.KindValidation, Result: audit.ResultDeny},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spans := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			a := Audit(tc.next, tp, mp, nil)
			ctx, call := tp.Tracer("t").Start(t.Context(), "decide tool_call")
			rec := tc.rec
			rec.DecisionID = "d1"
			if err := a.Log(ctx, rec); err != nil {
				t.Fatal(err)
			}
			// The tool_call decision annotates the pipeline's span.
			if err := a.Log(ctx, audit.Record{DecisionID: "d0", Kind: audit.KindToolCall, Result: audit.ResultAllow, Labels: rec.Labels, Revision: rec.Revision}); err != nil {
				t.Fatal(err)
			}
			call.End()
			ended := spans.Ended()
			if len(ended) != 2 {
				t.Fatalf("%d spans, want the decision's and the call's", len(ended))
			}
			for _, s := range ended {
				var got string
				for _, kv := range s.Attributes() {
					if kv.Key == AttrBundleRevision {
						got = kv.Value.AsString()
					}
				}
				if got != tc.want {
					t.Errorf("span %s: %s = %q, want %q", s.Name(), AttrBundleRevision, got, tc.want)
				}
			}
		})
	}
}

// TestAuditSpansCarryTheDryRun: a decision with a dry-run verdict puts
// it on its span, marked not enforced, reasons redacted; one without
// carries none of it.
func TestAuditSpansCarryTheDryRun(t *testing.T) {
	const secret = "sk-ant-" + "api03-abcdefghijklmnopqrstuvwxyz0123456789"
	for name, tc := range map[string]struct {
		dry        *audit.DryRun
		wantResult string // "" means no dry-run attributes
	}{
		"would deny":  {dry: &audit.DryRun{Reasons: []string{"no notes " + secret}}, wantResult: audit.ResultDeny},
		"would allow": {dry: &audit.DryRun{Allow: true}, wantResult: audit.ResultAllow},
		"failed":      {dry: &audit.DryRun{Error: "dry-run policy evaluation failed"}, wantResult: audit.ResultError},
		"none":        {},
	} {
		t.Run(name, func(t *testing.T) {
			spans := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			a := Audit(&fakeAuditor{}, tp, mp, nil)
			rec := audit.Record{DecisionID: "d1", Kind: audit.KindFilesystem, Result: audit.ResultAllow, DryRun: tc.dry}
			if err := a.Log(t.Context(), rec); err != nil {
				t.Fatal(err)
			}
			ended := spans.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans, want 1", len(ended))
			}
			got := map[string]attribute.Value{}
			for _, kv := range ended[0].Attributes() {
				got[string(kv.Key)] = kv.Value
			}
			if got[AttrDecisionResult].AsString() != audit.ResultAllow {
				t.Errorf("enforced result %v, want allow", got[AttrDecisionResult])
			}
			enforced, ok := got[AttrDryRunEnforced]
			if tc.wantResult == "" {
				if ok || got[AttrDryRunResult].Type() != attribute.INVALID {
					t.Fatalf("dry-run attributes on a decision without one: %v", got)
				}
				return
			}
			if !ok || enforced.AsBool() {
				t.Errorf("%s = %v, want false", AttrDryRunEnforced, enforced)
			}
			if r := got[AttrDryRunResult].AsString(); r != tc.wantResult {
				t.Errorf("%s = %q, want %q", AttrDryRunResult, r, tc.wantResult)
			}
			if n := len(got[AttrDryRunReasons].AsStringSlice()); n != len(tc.dry.Reasons) {
				t.Errorf("%d dry-run reasons on the span, want %d", n, len(tc.dry.Reasons))
			}
			for _, s := range got[AttrDryRunReasons].AsStringSlice() {
				if strings.Contains(s, secret) {
					t.Errorf("dry-run reason not redacted: %q", s)
				}
			}
		})
	}
}

// batchingAuditor is a fakeAuditor that also writes batches, and counts
// them.
type batchingAuditor struct {
	fakeAuditor
	batches int
}

func (b *batchingAuditor) LogBatch(_ context.Context, rs []audit.Record) error {
	b.batches++
	b.recs = append(b.recs, rs...)
	return b.err
}

func TestAuditBatchStaysOneBatch(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	next := &batchingAuditor{fakeAuditor: fakeAuditor{err: errors.New("disk full")}}
	a := Audit(next, tp, mp, nil).(interface {
		LogBatch(context.Context, []audit.Record) error
	})
	ctx, parent := tp.Tracer("t").Start(t.Context(), "tools/call fetch")
	err := a.LogBatch(ctx, []audit.Record{
		{DecisionID: "d1", Kind: audit.KindNetwork, Tool: "fetch", Result: audit.ResultAllow, DurationNS: 2000},
		{DecisionID: "d2", Kind: audit.KindToolResult, Tool: "fetch", Status: "ok"},
	})
	if err == nil {
		t.Fatal("the batch's error was not returned")
	}
	parent.End()
	if next.batches != 1 || len(next.recs) != 2 {
		t.Fatalf("%d batches, %d records: the records were not written together", next.batches, len(next.recs))
	}
	ended := spans.Ended()
	if len(ended) != 2 || ended[0].Name() != "decide network" {
		t.Fatalf("spans %v", ended)
	}
	if ended[0].EndTime().Sub(ended[0].StartTime()) != 2000 {
		t.Errorf("decision span lasts %v, want the decision's 2µs", ended[0].EndTime().Sub(ended[0].StartTime()))
	}
	if ended[0].Status().Code.String() != "Error" {
		t.Errorf("decision span status %v after a failed write", ended[0].Status())
	}
	if got := next.recs[0]; got.SpanID != ended[0].SpanContext().SpanID().String() {
		t.Errorf("record span %s, its span %s", got.SpanID, ended[0].SpanContext().SpanID())
	}
	if got := next.recs[1]; got.SpanID != parent.SpanContext().SpanID().String() || got.TraceID != parent.SpanContext().TraceID().String() {
		t.Errorf("tool_result record ids %s/%s, the request span's %s", got.TraceID, got.SpanID, parent.SpanContext().SpanID())
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	failures := int64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == MetricAuditFailures {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					failures += dp.Value
				}
			}
		}
	}
	if failures != 2 {
		t.Errorf("%d audit write failures counted, want 2", failures)
	}
}

func TestAuditHistogramsThroughTheOwnMeter(t *testing.T) {
	mp, collect := newTestMeterProvider(t)
	a := Audit(&fakeAuditor{}, sdktrace.NewTracerProvider(), mp, nil)
	if au := a.(*auditor); au.latencyH == nil || au.toolH == nil {
		t.Fatal("the histograms are not this package's: the points are not kept")
	}
	for _, r := range []audit.Record{
		{Kind: audit.KindToolCall, Result: audit.ResultAllow, DurationNS: 2e3},
		{Kind: audit.KindToolCall, Result: audit.ResultAllow, DurationNS: 4e3},
		{Kind: audit.KindNetwork, Result: audit.ResultDeny, DurationNS: 1e3},
		{Kind: audit.KindToolResult, Tool: "fetch", Status: audit.StatusOK, DurationNS: 3e9},
	} {
		if err := a.Log(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	type key struct{ a, b string }
	points := func(name, ka, kb string) map[key][2]float64 {
		t.Helper()
		h, ok := collect()[name].(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("%s is not a float64 histogram", name)
		}
		out := map[key][2]float64{}
		for _, dp := range h.DataPoints {
			a, _ := dp.Attributes.Value(attribute.Key(ka))
			b, _ := dp.Attributes.Value(attribute.Key(kb))
			out[key{a.AsString(), b.AsString()}] = [2]float64{float64(dp.Count), dp.Sum}
		}
		return out
	}
	want := map[key][2]float64{{audit.KindToolCall, audit.ResultAllow}: {2, 6e-6}, {audit.KindNetwork, audit.ResultDeny}: {1, 1e-6}}
	if diff := cmp.Diff(want, points(MetricDecisionDuration, AttrDecisionKind, AttrDecisionResult), cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("decision latency (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[key][2]float64{{"fetch", audit.StatusOK}: {1, 3}}, points(MetricToolDuration, AttrToolName, AttrToolStatus)); diff != "" {
		t.Errorf("tool duration (-want +got):\n%s", diff)
	}
}
