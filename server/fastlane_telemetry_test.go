//go:build unix

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestFastLaneWithTelemetry: with telemetry on, the fast lane takes
// tools/call (not ping, whose span the SDK's path makes), and a call it
// takes has the spans the SDK's path gives the same call: names, kinds,
// attributes and parent links, continuing the client's trace.
func TestFastLaneWithTelemetry(t *testing.T) {
	var took sync.Map // request id -> true
	tookHook = func(r *jsonrpc.Request) { took.Store(fmt.Sprint(r.ID.Raw()), true) }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	c, rec := tracedRawClient(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	params := `"name":"echo","arguments":{"msg":"m"},"_meta":{"traceparent":"00-` + traceID + `-00f067aa0ba902b7-01"}`
	for id, extra := range map[int]string{1: ``, 2: `,"requestState":""`} {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{%s%s}}`, id, params, extra))
		if got := c.answer(id); !strings.Contains(got, `"msg":"m"`) {
			t.Fatalf("answer to %d: %s", id, got)
		}
		if _, fast := took.Load(fmt.Sprint(id)); fast != (id == 1) {
			t.Errorf("call %d taken by the fast lane %v, want %v", id, fast, id == 1)
		}
	}
	c.send(`{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	c.answer(3)
	if _, fast := took.Load("3"); fast {
		t.Error("ping taken by the fast lane with telemetry on: it would have no span")
	}

	// Each call's spans, described, by the request id of its request
	// span.
	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	calls := map[string][]string{}
	for _, s := range spans {
		root := s
		for {
			p, ok := byID[root.Parent().SpanID()]
			if !ok {
				break
			}
			root = p
		}
		if root.Name() != "tools/call echo" {
			continue
		}
		id := attrsOf(root)[attrRequestID]
		if root.SpanContext().TraceID().String() != traceID || !root.Parent().IsRemote() {
			t.Errorf("call %s: trace %s, parent %v: the client's trace is not continued", id, root.SpanContext().TraceID(), root.Parent())
		}
		parent := "-"
		if p, ok := byID[s.Parent().SpanID()]; ok {
			parent = p.Name()
		}
		attrs := attrsOf(s)
		delete(attrs, attrRequestID)
		delete(attrs, "mcp_secure.decision_id")
		calls[id] = append(calls[id], fmt.Sprintf("%s (%s, under %s) %v %v", s.Name(), s.SpanKind(), parent, attrs, s.Status()))
	}
	for _, d := range calls {
		slices.Sort(d)
	}
	if len(calls["1"]) < 4 {
		t.Fatalf("the fast lane's call has spans %v, want the request's and its children", calls["1"])
	}
	if diff := cmp.Diff(calls["2"], calls["1"]); diff != "" {
		t.Errorf("spans of the fast lane's call (-SDK's path +fast lane):\n%s", diff)
	}
}

// tracedRawClient runs a server with telemetry on (spans recorded in
// rec) for a rawClient, past its handshake.
func tracedRawClient(t *testing.T) (*rawClient, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	c, _ := newRawClientWith(t, Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: &fakeLimiter{limit: map[string]int{}},
		Timeout: 10 * time.Second, Plugins: []string{"pipeline-test", "fastlane-test"}, TracerProvider: tp, MeterProvider: mp})
	c.initialize()
	return c, rec
}

// TestFastLaneEmptyRequestIDSpan: a tools/call whose JSON-RPC id is the
// empty string has a request id, "", on its request span whether the
// fast lane or the SDK's path answers it (the transport puts "" in its
// _meta, which the SDK's path reads as present).
func TestFastLaneEmptyRequestIDSpan(t *testing.T) {
	var took sync.Map
	tookHook = func(r *jsonrpc.Request) { took.Store(fmt.Sprintf("%q", r.ID.Raw()), true) }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	c, rec := tracedRawClient(t)
	for _, tc := range []struct {
		name, extra string
		fast        bool
	}{{"sdk", `,"requestState":""`, false}, {"fast-lane", ``, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			took.Delete(`""`)
			c.send(`{"jsonrpc":"2.0","id":"","method":"tools/call","params":{"name":"echo","arguments":{"msg":"m"}` + tc.extra + `}}`)
			for line := range c.lines {
				var m struct {
					ID json.RawMessage `json:"id"`
				}
				if json.Unmarshal([]byte(line), &m) == nil && string(m.ID) == `""` {
					break
				}
			}
			if _, fast := took.Load(`""`); fast != tc.fast {
				t.Fatalf("taken by the fast lane %v, want %v", fast, tc.fast)
			}
			found := false
			for _, s := range rec.Ended() {
				if s.Name() != "tools/call echo" {
					continue
				}
				found = true
				if _, ok := attrsOf(s)[attrRequestID]; !ok {
					t.Errorf("request span has no %s attribute: %v", attrRequestID, attrsOf(s))
				}
			}
			if !found {
				t.Fatal("no request span")
			}
		})
	}
}
