//go:build unix

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestFastLaneEmptyRequestIDSpan: a tools/call whose JSON-RPC id is the
// empty string has a request id, "", on its request span whether the
// fast lane or the SDK's path answers it (the transport puts "" in its
// _meta, which the SDK's path reads as present).
func TestFastLaneEmptyRequestIDSpan(t *testing.T) {
	var took sync.Map
	tookHook = func(r *jsonrpc.Request) { took.Store(fmt.Sprintf("%q", r.ID.Raw()), true) }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
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
