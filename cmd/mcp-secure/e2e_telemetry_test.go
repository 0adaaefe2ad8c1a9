package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// The secret the calls carry in their arguments: it must reach no span,
// no metric and no uploaded event.
const telemetrySecret = "tkvalue7Q2xSECRET"

// TestE2ETelemetry drives real tools/calls through the binary with an
// OTLP exporter configured (HTTP and gRPC) and checks what an in-process
// collector receives: the request spans with their MCP attributes, the
// decision spans with their ids and results, parent and child links, a
// trace continued from _meta, the metrics, the audit records' trace and
// span ids, and no secret anywhere.
func TestE2ETelemetry(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(strings.ReplaceAll(protocol, "/", "-"), func(t *testing.T) {
			var c *collector
			var endpoint string
			if protocol == "grpc" {
				c, endpoint = startGRPCCollector(t)
			} else {
				c, endpoint = startHTTPCollector(t)
			}
			testTelemetry(t, c, endpoint, protocol)
		})
	}
}

func testTelemetry(t *testing.T, c *collector, endpoint, protocol string) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "fetched") }))
	t.Cleanup(upstream.Close)
	blocked := unusedPort(t)
	e := newEnvNet(t, loopbackNetwork(blocked), `tools:
  timeout: 10
  denied: [fixture_write]
  rate_limits:
    default: 600
    fixture_read: 1
`)
	e.vars = []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
		"OTEL_SERVICE_NAME=mcp-secure-e2e",
		"OTEL_BSP_SCHEDULE_DELAY=50",
		"OTEL_METRIC_EXPORT_INTERVAL=100",
	}
	cs := e.connect(t, "2025-11-25")

	// allowed, through the network guard, in the client's trace
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{
		Meta:      mcp.Meta{"traceparent": "00-" + clientTrace + "-" + clientSpan + "-01"},
		Name:      "fixture_fetch",
		Arguments: map[string]any{"url": upstream.URL + "/x?token=" + telemetrySecret},
	})
	if err != nil || res.IsError {
		t.Fatalf("allowed fetch: %v %s", err, text(res))
	}
	// under a client's traceparent whose sampled flag is off: by default
	// the client cannot switch the server's spans off
	const unsampledTrace = "5cf92f3577b34da6a3ce929d0e0e4737"
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{
		Meta: mcp.Meta{"traceparent": "00-" + unsampledTrace + "-" + clientSpan + "-00"},
		Name: "list_categories", Arguments: map[string]any{},
	}); err != nil || res.IsError {
		t.Fatalf("list_categories: %v %s", err, text(res))
	}
	// denied by the policy (tools.denied)
	if res := call(t, cs, "fixture_write", map[string]any{"path": e.workspace + "/f", "text": "password=" + telemetrySecret}); !res.IsError {
		t.Fatalf("fixture_write was not denied: %s", text(res))
	}
	// denied by the network guard (a blocked port)
	if res := call(t, cs, "fixture_fetch", map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d/?token=%s", blocked, telemetrySecret)}); !res.IsError {
		t.Fatalf("fetch of a blocked port was not denied: %s", text(res))
	}
	// rate limited: the second call within the minute
	call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/none"})
	if res := call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/none"}); !res.IsError || !strings.Contains(text(res), "rate limit") {
		t.Fatalf("second fixture_read was not rate limited: %s", text(res))
	}
	cs.Close() // the server exits and flushes

	waitUntil(t, 10*time.Second, "spans and metrics", func() bool {
		spans, metrics, _ := c.snapshot()
		return len(spans) > 0 && len(metrics) > 0
	})
	spans, metrics, raw := c.snapshot()
	if c.service != "mcp-secure-e2e" {
		t.Errorf("service.name = %q, want OTEL_SERVICE_NAME", c.service)
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[hexID(s.SpanId)] = s
	}
	children := func(parent *tracepb.Span) map[string]*tracepb.Span {
		out := map[string]*tracepb.Span{}
		for _, s := range spans {
			if hexID(s.ParentSpanId) == hexID(parent.SpanId) && hexID(s.TraceId) == hexID(parent.TraceId) {
				out[s.Name] = s
			}
		}
		return out
	}
	requests := func(name string) []*tracepb.Span {
		var out []*tracepb.Span
		for _, s := range spans {
			if s.Name == name && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
				out = append(out, s)
			}
		}
		return out
	}
	recs := e.records(t)
	recordOf := func(kind, decisionID string) map[string]any {
		for _, r := range recs {
			if r["kind"] == kind && r["decision_id"] == decisionID {
				return r
			}
		}
		t.Fatalf("no %s record with decision_id %s", kind, decisionID)
		return nil
	}

	t.Run("allow/continues-client-trace", func(t *testing.T) {
		fetches := requests("tools/call fixture_fetch")
		if len(fetches) != 2 {
			t.Fatalf("%d tools/call fixture_fetch spans, want 2", len(fetches))
		}
		req := fetches[0]
		if hexID(req.TraceId) != clientTrace || hexID(req.ParentSpanId) != clientSpan {
			req = fetches[1]
		}
		if hexID(req.TraceId) != clientTrace || hexID(req.ParentSpanId) != clientSpan {
			t.Fatalf("request span trace %s parent %s: the client's traceparent was not continued", hexID(req.TraceId), hexID(req.ParentSpanId))
		}
		for k, want := range map[string]string{"mcp.method.name": "tools/call", "gen_ai.tool.name": "fixture_fetch",
			"mcp.protocol.version": "2025-11-25", "gen_ai.operation.name": "execute_tool"} {
			if got := attr(req.Attributes, k); got != want {
				t.Errorf("request span %s = %q, want %q", k, got, want)
			}
		}
		for _, k := range []string{"jsonrpc.request.id", "mcp.session.id"} {
			if attr(req.Attributes, k) == "" {
				t.Errorf("request span has no %s", k)
			}
		}
		if got := attr(req.Attributes, "error.type"); got != "" {
			t.Errorf("allowed call has error.type %q", got)
		}
		kids := children(req)
		for _, name := range []string{"validate_arguments", "decide tool_call", "execute_tool fixture_fetch"} {
			if kids[name] == nil {
				t.Errorf("request span has no child %q (children: %v)", name, keys(kids))
			}
		}
		dec := kids["decide tool_call"]
		if dec == nil {
			return
		}
		id := attr(dec.Attributes, "mcp_secure.decision_id")
		for k, want := range map[string]string{"mcp_secure.decision.result": "allow", "mcp_secure.decision.path": "mcp/tools/decision",
			"gen_ai.security.decision.type": "allow"} {
			if got := attr(dec.Attributes, k); got != want {
				t.Errorf("decision span %s = %q, want %q", k, got, want)
			}
		}
		rec := recordOf("tool_call", id)
		if rec["trace_id"] != clientTrace || rec["span_id"] != hexID(dec.SpanId) || rec["trace_origin"] != "client" {
			t.Errorf("tool_call record trace_id %v span_id %v trace_origin %v, want %s %s client", rec["trace_id"], rec["span_id"], rec["trace_origin"], clientTrace, hexID(dec.SpanId))
		}
		// The guard's dial decision is a child of the handler's span.
		handler := kids["execute_tool fixture_fetch"]
		if handler == nil {
			return
		}
		nets := children(handler)["decide network"]
		if nets == nil {
			t.Fatalf("handler span has no decide network child (children: %v)", keys(children(handler)))
		}
		if attr(nets.Attributes, "mcp_secure.parent_decision_id") != id || attr(nets.Attributes, "mcp_secure.decision.result") != "allow" ||
			attr(nets.Attributes, "mcp_secure.target.ip") != "127.0.0.1" {
			t.Errorf("network decision span attributes: %v", nets.Attributes)
		}
		nrec := recordOf("network", attr(nets.Attributes, "mcp_secure.decision_id"))
		if nrec["span_id"] != hexID(nets.SpanId) || nrec["trace_id"] != clientTrace || nrec["trace_origin"] != "client" {
			t.Errorf("network record span_id %v trace_origin %v, want %s client", nrec["span_id"], nrec["trace_origin"], hexID(nets.SpanId))
		}
		if rr := findByKind(recs, "tool_result", id); rr == nil || rr["trace_id"] != clientTrace || rr["trace_origin"] != "client" {
			t.Errorf("tool_result record without the trace: %v", rr)
		}
	})

	t.Run("client-sampled-flag-off/still-exported", func(t *testing.T) {
		var req *tracepb.Span
		for _, s := range requests("tools/call list_categories") {
			if hexID(s.TraceId) == unsampledTrace {
				req = s
			}
		}
		if req == nil {
			t.Fatal("no request span in the trace whose traceparent said not sampled: the client switched the server's spans off")
		}
		if hexID(req.ParentSpanId) != clientSpan || children(req)["decide tool_call"] == nil {
			t.Errorf("request span parent %s, children %v", hexID(req.ParentSpanId), keys(children(req)))
		}
	})

	t.Run("deny/policy", func(t *testing.T) {
		reqs := requests("tools/call fixture_write")
		if len(reqs) != 1 {
			t.Fatalf("%d fixture_write request spans", len(reqs))
		}
		if got := attr(reqs[0].Attributes, "error.type"); got != "tool_error" {
			t.Errorf("denied call error.type = %q", got)
		}
		dec := children(reqs[0])["decide tool_call"]
		if dec == nil {
			t.Fatalf("no decision span (children: %v)", keys(children(reqs[0])))
		}
		if attr(dec.Attributes, "mcp_secure.decision.result") != "deny" || attr(dec.Attributes, "gen_ai.security.decision.type") != "deny" ||
			!strings.Contains(attr(dec.Attributes, "mcp_secure.decision.reasons"), "tools.denied") {
			t.Errorf("denied decision span attributes: %v", dec.Attributes)
		}
		rec := recordOf("tool_call", attr(dec.Attributes, "mcp_secure.decision_id"))
		if rec["result"] != "deny" || rec["span_id"] != hexID(dec.SpanId) || rec["trace_origin"] != "server" {
			t.Errorf("denied record %v does not match its span", rec)
		}
		if children(reqs[0])["execute_tool fixture_write"] != nil {
			t.Error("a denied tool ran")
		}
	})

	t.Run("deny/network-guard", func(t *testing.T) {
		var found *tracepb.Span
		for _, s := range spans {
			if s.Name == "decide network" && attr(s.Attributes, "mcp_secure.decision.result") == "deny" {
				found = s
			}
		}
		if found == nil {
			t.Fatal("no denied network decision span")
		}
		if attr(found.Attributes, "mcp_secure.target.port") != fmt.Sprint(blocked) || attr(found.Attributes, "gen_ai.security.decision.type") != "deny" {
			t.Errorf("denied network span attributes: %v", found.Attributes)
		}
		parent := byID[hexID(found.ParentSpanId)]
		if parent == nil || !strings.HasPrefix(parent.Name, "tools/call fixture_fetch") && !strings.HasPrefix(parent.Name, "execute_tool fixture_fetch") {
			t.Errorf("denied network span's parent is %v", parent)
		}
		rec := recordOf("network", attr(found.Attributes, "mcp_secure.decision_id"))
		if rec["result"] != "deny" || rec["span_id"] != hexID(found.SpanId) {
			t.Errorf("network record %v does not match its span", rec)
		}
	})

	t.Run("deny/rate-limit", func(t *testing.T) {
		var found bool
		for _, s := range spans {
			if s.Name == "decide rate_limit" && attr(s.Attributes, "mcp_secure.decision.result") == "deny" {
				found = true
			}
		}
		if !found {
			t.Error("no rate_limit decision span")
		}
	})

	t.Run("metrics", func(t *testing.T) {
		names := map[string]bool{}
		for _, m := range metrics {
			names[m.Name] = true
		}
		for _, want := range []string{"mcp_secure.decisions", "mcp_secure.decision.duration", "mcp_secure.tool.duration",
			"mcp_secure.calls.in_flight", "mcp_secure.rate_limit.rejections", "mcp.server.operation.duration"} {
			if !names[want] {
				t.Errorf("no metric %s (got %v)", want, keys(names))
			}
		}
		var denies, allows bool
		for _, m := range metrics {
			if m.Name != "mcp_secure.decisions" {
				continue
			}
			for _, dp := range m.GetSum().GetDataPoints() {
				kind, result := attr(dp.Attributes, "mcp_secure.decision.kind"), attr(dp.Attributes, "mcp_secure.decision.result")
				denies = denies || kind == "network" && result == "deny" && dp.GetAsInt() >= 1
				allows = allows || kind == "tool_call" && result == "allow" && dp.GetAsInt() >= 1
			}
		}
		if !denies || !allows {
			t.Errorf("mcp_secure.decisions lacks network/deny or tool_call/allow points")
		}
	})

	t.Run("no-secrets", func(t *testing.T) {
		if strings.Contains(raw, telemetrySecret) {
			t.Error("a secret from the arguments reached the collector")
		}
		if !strings.Contains(raw, "fixture_fetch") {
			t.Error("the search for secrets searched nothing")
		}
	})
}

func findByKind(recs []map[string]any, kind, decisionID string) map[string]any {
	for _, r := range recs {
		if r["kind"] == kind && r["decision_id"] == decisionID {
			return r
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestE2ETelemetryRawRequests: with telemetry on, requests without
// params (notifications/initialized, ping), with a malformed _meta or a
// bogus traceparent are served, not a crash.
func TestE2ETelemetryRawRequests(t *testing.T) {
	c, endpoint := startHTTPCollector(t)
	e := newEnv(t, "")
	e.vars = []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_BSP_SCHEDULE_DELAY=50"}
	r := e.startRaw(t)
	r.initialize() // notifications/initialized without params
	for i, line := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"traceparent":"00-zzzz-yyyy-01"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"traceparent":42,"tracestate":["x"]}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_categories","arguments":{},"_meta":{"traceparent":"00-00000000000000000000000000000000-0000000000000000-01"}}}`,
	} {
		r.send(line)
		if m := r.recv(); fmt.Sprint(m["id"]) != fmt.Sprint(i+1) || m["result"] == nil {
			t.Fatalf("request %d: %v", i+1, m)
		}
	}
	r.stdin.Close()
	waitUntil(t, 10*time.Second, "the spans", func() bool {
		spans, _, _ := c.snapshot()
		n := 0
		for _, s := range spans {
			if s.Name == "ping" || s.Name == "tools/list" || s.Name == "tools/call list_categories" {
				n++
			}
		}
		return n >= 4
	})
}

// TestE2ETelemetryCollectorUnreachable: a collector that refuses
// connections, or accepts them and never answers, neither fails nor
// slows calls, and the server still exits within the flush bound.
func TestE2ETelemetryCollectorUnreachable(t *testing.T) {
	blackhole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blackhole.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := blackhole.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never read, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	for name, endpoint := range map[string]string{
		"refused":   fmt.Sprintf("http://127.0.0.1:%d", unusedPort(t)),
		"blackhole": "http://" + blackhole.Addr().String(),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "telemetry:\n  endpoint: \""+endpoint+"\"\n  shutdown_timeout: 2\n")
			e.vars = []string{"OTEL_BSP_SCHEDULE_DELAY=10", "OTEL_METRIC_EXPORT_INTERVAL=50"}
			var stderr bytes.Buffer
			cs := e.connectStderr(t, &lockedWriter{w: &stderr})
			for i := range 30 {
				if res := call(t, cs, "list_categories", map[string]any{}); res.IsError {
					t.Fatalf("call %d failed: %s", i, text(res))
				}
			}
			cs.Close()
			if n := len(e.records(t)); n < 60 {
				t.Errorf("%d audit records, want every call's", n)
			}
		})
	}
}
