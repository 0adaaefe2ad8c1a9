//go:build unix

package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/ratelimit"
	"github.com/mcp-secure/mcp-secure/server/telemetry"
)

// BenchmarkToolsCallTelemetry is BenchmarkToolsCall/allow through the
// request middleware as well, with telemetry off and with spans and
// metrics exported over OTLP/HTTP to a loopback collector, with the
// audit records going through telemetry.Audit as serve wires them. The
// difference is the cost of tracing a call.
func BenchmarkToolsCallTelemetry(b *testing.B) {
	pol, err := policy.Default()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := engine.Builtin(pol.Data(), nil)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	eng.Warm(b.Context())
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	for _, mode := range []string{"off", "otlp"} {
		b.Run(mode, func(b *testing.B) {
			opts := Options{Engine: eng, Plugins: []string{"pipeline-test"},
				Audit:   audit.New(audit.NewWriterSink(io.Discard), &audit.Options{Masker: eng}),
				Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 30}, time.Now)}
			if mode == "otlp" {
				se, err := otlptracehttp.New(b.Context(), otlptracehttp.WithEndpointURL(sink.URL+"/v1/traces"))
				if err != nil {
					b.Fatal(err)
				}
				me, err := otlpmetrichttp.New(b.Context(), otlpmetrichttp.WithEndpointURL(sink.URL+"/v1/metrics"))
				if err != nil {
					b.Fatal(err)
				}
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(se))
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me)))
				defer tp.Shutdown(context.Background())
				defer mp.Shutdown(context.Background())
				opts.TracerProvider, opts.MeterProvider = tp, mp
				opts.Audit = telemetry.Audit(opts.Audit, tp, mp, nil)
			}
			s, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			h := s.pipe.obs.middleware(s.pipe)(func(ctx context.Context, _ string, req mcp.Request) (mcp.Result, error) {
				return s.pipe.call(ctx, req.(*mcp.CallToolRequest))
			})
			req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "echo", Arguments: json.RawMessage(`{"msg":"hello"}`),
				Meta: mcp.Meta{requestIDMeta: "7"}}}
			b.ReportAllocs()
			done := reportCPU(b)
			for b.Loop() {
				res, err := h(context.Background(), "tools/call", req)
				if err != nil || res.(*mcp.CallToolResult).IsError {
					b.Fatalf("%v %+v", err, res)
				}
			}
			done()
		})
	}
}
