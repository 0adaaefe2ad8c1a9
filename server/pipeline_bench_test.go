//go:build unix

package server

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/ratelimit"
)

// BenchmarkToolsCall is one whole tools/call through the pipeline, in
// process: argument checks and schema validation, the rate limiter, the
// decision on the real engine with the embedded default policy, the
// audit records (redacted, chained, masked by the built-in rules) and the
// handler. What it leaves out is the transport and the SDK.
func BenchmarkToolsCall(b *testing.B) {
	eng := defaultEngine(b)
	alog := audit.New(audit.NewWriterSink(io.Discard), &audit.Options{Masker: eng})
	s, err := New(Options{Engine: eng, Audit: alog, Plugins: []string{"pipeline-test"},
		Limiter: ratelimit.New(ratelimit.Config{Default: 1 << 30}, time.Now)})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, tool string
		args       string
		isError    bool
	}{
		{"allow", "echo", `{"msg":"hello"}`, false},
		{"deny-unknown-tool", "no_such_tool", `{}`, true},
		{"deny-invalid-arguments", "echo", `{"msg":"far too long a message"}`, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: bc.tool, Arguments: json.RawMessage(bc.args)}}
			b.ReportAllocs()
			done := reportCPU(b)
			for b.Loop() {
				res, err := s.pipe.call(context.Background(), req)
				if err != nil || res.IsError != bc.isError {
					b.Fatalf("%v %+v", err, res)
				}
			}
			done()
		})
	}
}

// defaultEngine is the real engine on the embedded default policy,
// warmed, as mcp-secure serve builds it.
func defaultEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	pol, err := policy.Default()
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := engine.Builtin(pol.Data(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.New(tb.Context(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	eng.Warm(tb.Context())
	return eng
}
