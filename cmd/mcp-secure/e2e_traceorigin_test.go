package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestE2ETraceOrigin: a call whose _meta carries a traceparent continues
// the client's trace (its request span is a child of the client's span),
// and every audit record of that call says its trace id is the client's
// (trace_origin "client"). A call without one, or with a malformed or
// all-zero traceparent, is in a trace the server began: its records say
// trace_origin "server", and never carry an id the client wrote.
func TestE2ETraceOrigin(t *testing.T) {
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	c, endpoint := startHTTPCollector(t)
	e := newEnv(t, "")
	e.vars = []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_BSP_SCHEDULE_DELAY=50"}
	r := e.startRaw(t)
	r.initialize()

	type callCase struct {
		id          int
		tool        string
		traceparent string // "" sends no _meta
		client      bool   // the records are in the client's trace
	}
	cases := []callCase{
		{1, "list_categories", "00-" + clientTrace + "-" + clientSpan + "-01", true},
		{2, "no_such_tool", "00-" + clientTrace + "-" + clientSpan + "-01", true}, // denied
		{3, "list_categories", "", false},
		{4, "no_such_tool", "", false},
		{5, "list_categories", "00-00000000000000000000000000000000-0000000000000000-01", false},
		{6, "list_categories", "00-00000000000000000000000000000000-" + clientSpan + "-01", false},
		{7, "list_categories", "00-" + clientTrace + "-" + clientSpan + "-01-extra", false},
		{8, "list_categories", "00-" + strings.ToUpper(clientTrace) + "-" + clientSpan + "-01", false},
		{9, "list_categories", "00-" + clientTrace + "-" + clientSpan, false},
	}
	for _, cc := range cases {
		meta := ""
		if cc.traceparent != "" {
			meta = fmt.Sprintf(`,"_meta":{"traceparent":%q}`, cc.traceparent)
		}
		r.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}%s}}`, cc.id, cc.tool, meta))
		if m := r.recv(); fmt.Sprint(m["id"]) != fmt.Sprint(cc.id) || m["result"] == nil {
			t.Fatalf("call %d: %v", cc.id, m)
		}
	}
	r.stdin.Close()
	waitUntil(t, 15*time.Second, "the request spans", func() bool {
		spans, _, _ := c.snapshot()
		n := 0
		for _, s := range spans {
			if strings.HasPrefix(s.Name, "tools/call ") {
				n++
			}
		}
		return n >= len(cases)
	})
	spans, _, _ := c.snapshot()
	serverSpans := map[string]string{} // request id -> trace id of its request span
	for _, s := range spans {
		if !strings.HasPrefix(s.Name, "tools/call ") {
			continue
		}
		id := attr(s.Attributes, "jsonrpc.request.id")
		serverSpans[id] = hexID(s.TraceId)
		if id == "1" && (hexID(s.TraceId) != clientTrace || hexID(s.ParentSpanId) != clientSpan) {
			t.Errorf("request 1's span is in trace %s under %s: the client's trace was not continued", hexID(s.TraceId), hexID(s.ParentSpanId))
		}
	}

	recs := e.records(t)
	for _, cc := range cases {
		t.Run(fmt.Sprintf("call-%d", cc.id), func(t *testing.T) {
			id := fmt.Sprint(cc.id)
			var mine []map[string]any
			for _, rec := range recs {
				if rec["request_id"] == id {
					mine = append(mine, rec)
				}
			}
			wantKinds := 2 // tool_call allow and tool_result
			if cc.tool == "no_such_tool" {
				wantKinds = 1 // tool_call deny
			}
			if len(mine) != wantKinds {
				t.Fatalf("%d records for request %s, want %d: %v", len(mine), id, wantKinds, mine)
			}
			for _, rec := range mine {
				trace, _ := rec["trace_id"].(string)
				if len(trace) != 32 || trace == strings.Repeat("0", 32) {
					t.Errorf("%s record trace_id %q", rec["kind"], trace)
				}
				if trace != serverSpans[id] {
					t.Errorf("%s record trace_id %s, its request span's is %s", rec["kind"], trace, serverSpans[id])
				}
				if cc.client {
					if trace != clientTrace || rec["trace_origin"] != "client" {
						t.Errorf("%s record in the client's trace: trace_id %s trace_origin %v", rec["kind"], trace, rec["trace_origin"])
					}
					continue
				}
				if trace == clientTrace || rec["trace_origin"] != "server" {
					t.Errorf("%s record of a call without a valid traceparent: trace_id %s trace_origin %v", rec["kind"], trace, rec["trace_origin"])
				}
			}
		})
	}
}
