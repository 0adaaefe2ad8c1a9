//go:build unix

package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// observed is a server whose tools/call goes through the request
// middleware, with spans and metrics recorded in memory.
type observed struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	lim    *fakeLimiter
	h      mcp.MethodHandler
}

func newObserved(t *testing.T, sampler sdktrace.Sampler) *observed {
	t.Helper()
	o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(),
		lim: &fakeLimiter{limit: map[string]int{}}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans), sdktrace.WithSampler(sampler))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	s, err := New(Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: o.lim, Audit: &fakeAuditor{},
		Plugins: []string{"pipeline-test"}, TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	o.h = s.pipe.obs.middleware(s.pipe)(func(ctx context.Context, _ string, req mcp.Request) (mcp.Result, error) {
		return s.pipe.call(ctx, req.(*mcp.CallToolRequest))
	})
	return o
}

func (o *observed) call(t *testing.T, tool, args, requestID string) {
	t.Helper()
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: tool, Arguments: json.RawMessage(args),
		Meta: mcp.Meta{requestIDMeta: requestID}}}
	if _, err := o.h(t.Context(), "tools/call", req); err != nil {
		t.Fatal(err)
	}
}

func attrsOf(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}

// TestObserverSpans checks the spans of a call as the request middleware
// and the pipeline make them: names, kinds, attributes, status and
// parent links, for each way a call ends.
func TestObserverSpans(t *testing.T) {
	const secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
	for _, tc := range []struct {
		name, tool, args string
		span             string            // the request span's name
		attrs            map[string]string // on the request span ("" = absent)
		children         []string
		exec             map[string]string // on the execute_tool span, if any
	}{
		{name: "allow/echo", tool: "echo", args: `{"msg":"hi"}`, span: "tools/call echo",
			attrs: map[string]string{"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "gen_ai.operation.name": "execute_tool",
				"jsonrpc.request.id": "7", "error.type": ""},
			children: []string{"validate_arguments", "decide tool_call", "execute_tool echo"},
			exec:     map[string]string{"gen_ai.tool.name": "echo", "gen_ai.operation.name": "execute_tool", "mcp_secure.tool.status": "ok", "error.type": ""}},
		{name: "deny/invalid-arguments", tool: "echo", args: `{"msg":"far too long a message"}`, span: "tools/call echo",
			attrs:    map[string]string{"gen_ai.tool.name": "echo", "error.type": "tool_error"},
			children: []string{"validate_arguments"}},
		{name: "deny/unknown-tool-named-like-a-secret", tool: secret, args: `{}`, span: "tools/call [REDACTED",
			attrs:    map[string]string{"error.type": "tool_error"},
			children: []string{"validate_arguments", "decide tool_call"}},
		{name: "error/handler-fails", tool: "fails", args: `{}`, span: "tools/call fails",
			attrs:    map[string]string{"gen_ai.tool.name": "fails", "error.type": "tool_error"},
			children: []string{"validate_arguments", "decide tool_call", "execute_tool fails"},
			exec:     map[string]string{"mcp_secure.tool.status": "tool_error", "error.type": "tool_error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newObserved(t, sdktrace.AlwaysSample())
			o.call(t, tc.tool, tc.args, "7")
			ended := o.spans.Ended()
			var req sdktrace.ReadOnlySpan
			for _, s := range ended {
				if s.SpanKind() == trace.SpanKindServer {
					req = s
				}
			}
			if req == nil {
				t.Fatalf("no server span among %d", len(ended))
			}
			if !strings.HasPrefix(req.Name(), tc.span) {
				t.Errorf("request span %q, want %q", req.Name(), tc.span)
			}
			attrs := attrsOf(req)
			for k, want := range tc.attrs {
				if got := attrs[k]; got != want {
					t.Errorf("request span %s = %q, want %q", k, got, want)
				}
			}
			if tc.attrs["error.type"] != "" && req.Status().Code != codes.Error {
				t.Errorf("request span status %v, want error", req.Status())
			}
			kids := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range ended {
				if s.Parent().SpanID() == req.SpanContext().SpanID() {
					kids[s.Name()] = s
				}
			}
			if len(kids) != len(tc.children) {
				t.Errorf("children %v, want %v", kids, tc.children)
			}
			for _, name := range tc.children {
				if kids[name] == nil {
					t.Errorf("no child %q", name)
				}
			}
			if tc.exec != nil {
				var exec sdktrace.ReadOnlySpan
				for name, s := range kids {
					if strings.HasPrefix(name, "execute_tool ") {
						exec = s
					}
				}
				if exec == nil {
					t.Fatal("no execute_tool span")
				}
				got := attrsOf(exec)
				for k, want := range tc.exec {
					if got[k] != want {
						t.Errorf("execute_tool span %s = %q, want %q", k, got[k], want)
					}
				}
			}
			for _, s := range ended {
				for _, kv := range s.Attributes() {
					if strings.Contains(kv.Value.Emit(), secret[4:]) {
						t.Errorf("secret in span %s attribute %s", s.Name(), kv.Key)
					}
				}
				if strings.Contains(s.Name(), secret[4:]) {
					t.Errorf("secret in span name %s", s.Name())
				}
			}
		})
	}
}

// TestObserverMetrics: the in-flight gauge is back to zero after calls,
// durations are recorded by tool and error type with made-up names as
// _OTHER, and rate-limit refusals are counted by tool; all of it whether
// or not the spans are sampled.
func TestObserverMetrics(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		t.Run(map[bool]string{true: "sampled", false: "sampled-out"}[sampled], func(t *testing.T) {
			sampler := sdktrace.AlwaysSample()
			if !sampled {
				sampler = sdktrace.NeverSample()
			}
			o := newObserved(t, sampler)
			o.call(t, "echo", `{"msg":"hi"}`, "1")
			o.call(t, "echo", `{"msg":"hi"}`, "2")
			o.call(t, "no_such_tool", `{}`, "3")
			o.lim.limit["echo"] = 0
			o.call(t, "echo", `{"msg":"hi"}`, "4")
			if n := len(o.spans.Ended()); sampled == (n == 0) {
				t.Errorf("%d spans ended (sampled %v)", n, sampled)
			}
			var rm metricdata.ResourceMetrics
			if err := o.reader.Collect(t.Context(), &rm); err != nil {
				t.Fatal(err)
			}
			type point struct{ tool, errType string }
			durations := map[point]uint64{}
			var inFlight, rejected int64 = -1, 0
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					switch m.Name {
					case "mcp_secure.calls.in_flight":
						sum := m.Data.(metricdata.Sum[int64])
						if sum.IsMonotonic || len(sum.DataPoints) != 1 {
							t.Errorf("in flight: %+v", sum)
						} else {
							inFlight = sum.DataPoints[0].Value
						}
					case "mcp_secure.rate_limit.rejections":
						for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
							if v, _ := dp.Attributes.Value(attribute.Key(attrTool)); v.AsString() == "echo" {
								rejected += dp.Value
							}
						}
					case "mcp.server.operation.duration":
						for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
							tool, _ := dp.Attributes.Value(attribute.Key(attrTool))
							errType, _ := dp.Attributes.Value(attribute.Key(attrErrorType))
							durations[point{tool.AsString(), errType.AsString()}] += dp.Count
						}
					}
				}
			}
			if inFlight != 0 {
				t.Errorf("in flight %d after the calls, want 0", inFlight)
			}
			if rejected != 1 {
				t.Errorf("%d rate-limit rejections of echo, want 1", rejected)
			}
			want := map[point]uint64{{"echo", ""}: 2, {"_OTHER", "tool_error"}: 1, {"echo", "tool_error"}: 1}
			for p, n := range want {
				if durations[p] != n {
					t.Errorf("durations %v: %d, want %d (all: %v)", p, durations[p], n, durations)
				}
			}
		})
	}
}

// TestObserverOffAllocates: with telemetry off the observer's every
// method is a check and nothing more.
func TestObserverOffAllocates(t *testing.T) {
	for name, o := range map[string]*observer{"off": newObserver(nil, nil, nil), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			next := func(context.Context, string, mcp.Request) (mcp.Result, error) { return nil, nil }
			if h := o.middleware(&pipeline{})(next); h == nil {
				t.Fatal("no handler")
			}
			n := testing.AllocsPerRun(100, func() {
				_, s := o.start(ctx, "validate_arguments")
				o.endValidation(s, nil)
				_, s = o.startTool(ctx, "echo")
				o.endTool(s, audit.StatusOK)
				o.rejected(ctx, "echo")
			})
			if n != 0 {
				t.Errorf("%v allocations per call, want 0", n)
			}
		})
	}
}
