//go:build unix

package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/open-policy-agent/opa/v1/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/ratelimit"
	"github.com/mcp-secure/mcp-secure/server/telemetry"
)

// BenchmarkToolsCallTelemetry is BenchmarkToolsCall/allow through the
// request middleware as well, with the audit records going through
// telemetry.Audit as serve wires them, in three modes:
//   - none: the pipeline without an observer at all, as a build without
//     telemetry would be;
//   - off: telemetry off, as serve runs without a collector configured;
//   - otlp: spans and metrics exported over OTLP/HTTP to a loopback
//     collector.
//
// "paired" calls the three in every iteration, so that the noise
// of a shared machine hits all of them alike, and reports the median
// call of each mode and the medians of the per-iteration differences
// (otlp-off is the cost of tracing a call; off-none should be nothing).
func BenchmarkToolsCallTelemetry(b *testing.B) {
	eng := defaultEngine(b)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "echo", Arguments: json.RawMessage(`{"msg":"hello"}`),
		Meta: mcp.Meta{requestIDMeta: "7"}}}
	call := func(b *testing.B, h mcp.MethodHandler) {
		res, err := h(context.Background(), "tools/call", req)
		if err != nil || res.(*mcp.CallToolResult).IsError {
			b.Fatalf("%v %+v", err, res)
		}
	}
	modes := []string{"none", "off", "otlp"}
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			h := telemetryHandler(b, eng, sink.URL, mode)
			b.ReportAllocs()
			done := reportCPU(b)
			for b.Loop() {
				call(b, h)
			}
			done()
		})
	}
	b.Run("paired", func(b *testing.B) {
		hs := make([]mcp.MethodHandler, len(modes))
		for i, mode := range modes {
			hs[i] = telemetryHandler(b, eng, sink.URL, mode)
			call(b, hs[i])
		}
		took := make([][]time.Duration, len(modes))
		for n := 0; b.Loop(); n++ {
			// Each mode goes first in turn: the first call of an
			// iteration runs on colder caches.
			for j := range hs {
				i := (n + j) % len(hs)
				start := time.Now()
				call(b, hs[i])
				took[i] = append(took[i], time.Since(start))
			}
		}
		med := func(d []time.Duration) float64 {
			d = slices.Clone(d)
			slices.Sort(d)
			return float64(d[len(d)/2].Nanoseconds())
		}
		diff := func(a, c []time.Duration) []time.Duration {
			out := make([]time.Duration, len(a))
			for i := range a {
				out[i] = a[i] - c[i]
			}
			return out
		}
		for i, mode := range modes {
			b.ReportMetric(med(took[i]), mode+"-p50-ns")
		}
		b.ReportMetric(med(diff(took[1], took[0])), "off-none-p50-ns")
		b.ReportMetric(med(diff(took[2], took[1])), "otlp-off-p50-ns")
	})
}

// BenchmarkStdioTelemetry is the cost of telemetry as a client sees it:
// a tools/call at a time over the stdio transport, in process, to two
// servers, one with telemetry off and one exporting over OTLP/HTTP to a
// loopback collector (audit records through telemetry.Audit), called in
// turn in every iteration as in BenchmarkToolsCallTelemetry/paired. It
// reports each one's median round trip and the median of the
// per-iteration differences (otlp-off).
func BenchmarkStdioTelemetry(b *testing.B) {
	eng := defaultEngine(b)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	modes := []string{"off", "otlp"}
	calls := make([]func(id int), len(modes))
	for i, mode := range modes {
		opts := Options{Engine: eng, Plugins: []string{"pipeline-test"},
			Audit:   audit.New(audit.NewWriterSink(io.Discard), &audit.Options{Masker: eng}),
			Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 30}, time.Now)}
		if mode == "otlp" {
			tp, mp := otlpProviders(b, sink.URL, "")
			opts.TracerProvider, opts.MeterProvider = tp, mp
			opts.Audit = telemetry.Audit(opts.Audit, tp, mp, nil)
		}
		calls[i] = stdioCaller(b, opts)
	}
	took := make([][]time.Duration, len(modes))
	for n := 0; b.Loop(); n++ {
		for j := range calls {
			i := (n + j) % len(calls)
			start := time.Now()
			calls[i](n + 1)
			took[i] = append(took[i], time.Since(start))
		}
	}
	med := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds())
	}
	diff := make([]time.Duration, len(took[0]))
	for i := range diff {
		diff[i] = took[1][i] - took[0][i]
	}
	b.ReportMetric(med(took[0]), "off-p50-ns")
	b.ReportMetric(med(took[1]), "otlp-p50-ns")
	b.ReportMetric(med(diff), "otlp-off-p50-ns")
}

// stdioCaller runs a server of opts over the stdio transport, in
// process, past initialize, and returns a function that makes the
// tools/call of echo with the given id and waits for its answer.
func stdioCaller(b *testing.B, opts Options) func(id int) {
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	b.Cleanup(func() { cOut.Close(); cancel(); <-done })
	out := bufio.NewReaderSize(cIn, 1<<16)
	next := func() string {
		got, err := out.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		return got
	}
	if _, err := io.WriteString(cOut, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`+"\n"+
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		b.Fatal(err)
	}
	next()
	return func(id int) {
		if _, err := fmt.Fprintf(cOut, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"msg":"hello"}}}`+"\n", id); err != nil {
			b.Fatal(err)
		}
		if got := next(); !strings.Contains(got, `"msg":"hello"`) || !strings.HasPrefix(got, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,`, id)) {
			b.Fatalf("answer %s", got)
		}
	}
}

// telemetryHandler is a server's tools/call through its request
// middleware, in one of BenchmarkToolsCallTelemetry's modes.
func telemetryHandler(b *testing.B, eng *engine.Engine, sink, mode string) mcp.MethodHandler {
	opts := Options{Engine: eng, Plugins: []string{"pipeline-test"},
		Audit:   audit.New(audit.NewWriterSink(io.Discard), &audit.Options{Masker: eng}),
		Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 30}, time.Now)}
	if mode == "otlp" {
		tp, mp := otlpProviders(b, sink, "")
		opts.TracerProvider, opts.MeterProvider = tp, mp
		opts.Audit = telemetry.Audit(opts.Audit, tp, mp, nil)
	}
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	if mode == "none" {
		s.pipe.obs = nil
	}
	return s.pipe.obs.middleware(s.pipe)(func(ctx context.Context, _ string, req mcp.Request) (mcp.Result, error) {
		return s.pipe.call(ctx, req.(*mcp.CallToolRequest))
	})
}

// otlpProviders are the providers serve uses (telemetry.New) exporting
// over OTLP/HTTP to sink, with the named sampler ("" for the default).
func otlpProviders(b *testing.B, sink, sampler string) (trace.TracerProvider, metric.MeterProvider) {
	tel, err := telemetry.New(b.Context(), telemetry.Config{Enabled: true, Endpoint: sink, Protocol: "http/protobuf",
		Sampler: sampler, ShutdownTimeout: time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel.TracerProvider(), tel.MeterProvider()
}

// BenchmarkTelemetryOverhead is the telemetry of one allowed tools/call
// alone, without the pipeline's own work between: the request span and
// its metrics, the validation, decision and handler spans, and the
// tool_call and tool_result records through telemetry.Audit (to an
// auditor that keeps nothing). Modes:
//   - off: no providers; it must cost nothing;
//   - on: spans sampled and exported to a loopback collector, as serve
//     sets telemetry up (telemetry.New);
//   - sdk-on: the SDK's own tracer provider exporting over OTLP/HTTP to
//     the same collector, as serve had it before telemetry.New made its
//     own tracer;
//   - sampled-out: as on, with every span sampled out.
//
// "sdk-floor" is what the SDK's tracer itself takes for as many spans
// (one parent, three children, no attributes) and histogram records.
func BenchmarkTelemetryOverhead(b *testing.B) {
	b.Run("sdk-floor", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() {
			tp.Shutdown(context.Background())
			mp.Shutdown(context.Background())
		})
		tr := tp.Tracer(scopeName)
		h, err := mp.Meter(scopeName).Float64Histogram("h")
		if err != nil {
			b.Fatal(err)
		}
		set := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(attrTool, "echo")))}
		b.ReportAllocs()
		for b.Loop() {
			ctx, span := tr.Start(context.Background(), "tools/call echo")
			for range 3 {
				_, child := tr.Start(ctx, "child")
				child.End()
				h.Record(ctx, 1e-5, set...)
			}
			span.End()
		}
	})
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	for _, mode := range []string{"off", "sdk-on", "on", "sampled-out"} {
		b.Run(mode, func(b *testing.B) {
			opts := Options{Engine: allowAll{}, Plugins: []string{"pipeline-test"}, Audit: discardAuditor{},
				Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 30}, time.Now)}
			switch mode {
			case "sdk-on":
				// The SDK's tracer provider and OTLP/HTTP exporter to the
				// same collector, as serve had them before telemetry.New
				// made its own tracer.
				se, err := otlptracehttp.New(b.Context(), otlptracehttp.WithEndpointURL(sink.URL+"/v1/traces"))
				if err != nil {
					b.Fatal(err)
				}
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(se))
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				b.Cleanup(func() {
					tp.Shutdown(context.Background())
					mp.Shutdown(context.Background())
				})
				opts.TracerProvider, opts.MeterProvider = tp, mp
			case "on", "sampled-out":
				// As serve sets it up, exporting to a loopback
				// collector: the export's own work (on its goroutine)
				// counts in the allocations.
				sampler := ""
				if mode == "sampled-out" {
					sampler = "always_off"
				}
				opts.TracerProvider, opts.MeterProvider = otlpProviders(b, sink.URL, sampler)
			}
			if opts.TracerProvider != nil {
				opts.Audit = telemetry.Audit(opts.Audit, opts.TracerProvider, opts.MeterProvider, nil)
			}
			s, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			p := s.pipe
			client, result := &audit.Client{}, &mcp.CallToolResult{}
			h := p.obs.middleware(p)(func(ctx context.Context, _ string, _ mcp.Request) (mcp.Result, error) {
				rec := audit.Record{DecisionID: "d", RequestID: "7", Tool: "echo", Client: client}
				_, vspan := p.obs.start(ctx, "validate_arguments")
				p.obs.endValidation(vspan, nil)
				dctx, dspan := p.obs.start(ctx, "decide "+audit.KindToolCall)
				rec.Path, rec.Kind, rec.Result, rec.Input = "mcp/tools/decision", audit.KindToolCall, audit.ResultAllow, nil
				p.audit.Log(dctx, rec)
				dspan.End()
				_, span := p.obs.startTool(ctx, "echo")
				p.obs.endTool(span, audit.StatusOK)
				rec.Kind, rec.Status = audit.KindToolResult, audit.StatusOK
				p.audit.Log(ctx, rec)
				return result, nil
			})
			req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "echo", Meta: mcp.Meta{requestIDMeta: "7"}}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h(context.Background(), "tools/call", req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type allowAll struct{}

func (allowAll) Decide(context.Context, engine.Point, ast.Value) (engine.Decision, error) {
	return engine.Decision{Allow: true}, nil
}

type discardAuditor struct{}

func (discardAuditor) Log(context.Context, audit.Record) error { return nil }
