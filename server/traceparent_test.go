package server

import (
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

func TestContinueTrace(t *testing.T) {
	const trace0, span0 = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		name string
		meta map[string]any
		want bool // continued, and marked as the client's
	}{
		{"continue/valid", map[string]any{"traceparent": "00-" + trace0 + "-" + span0 + "-01"}, true},
		{"continue/unsampled", map[string]any{"traceparent": "00-" + trace0 + "-" + span0 + "-00"}, true},
		{"continue/bad-tracestate-kept-apart", map[string]any{"traceparent": "00-" + trace0 + "-" + span0 + "-01", "tracestate": "=,="}, true},
		{"ignore/no-meta", nil, false},
		{"ignore/not-a-string", map[string]any{"traceparent": 42}, false},
		{"ignore/empty", map[string]any{"traceparent": ""}, false},
		{"ignore/garbage", map[string]any{"traceparent": "00-zzzz-yyyy-01"}, false},
		{"ignore/zero-trace", map[string]any{"traceparent": "00-00000000000000000000000000000000-" + span0 + "-01"}, false},
		{"ignore/zero-span", map[string]any{"traceparent": "00-" + trace0 + "-0000000000000000-01"}, false},
		{"ignore/all-zero", map[string]any{"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"}, false},
		{"ignore/upper-case", map[string]any{"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + span0 + "-01"}, false},
		{"ignore/version-ff", map[string]any{"traceparent": "ff-" + trace0 + "-" + span0 + "-01"}, false},
		{"ignore/version-00-extra-field", map[string]any{"traceparent": "00-" + trace0 + "-" + span0 + "-01-extra"}, false},
		{"ignore/short-trace", map[string]any{"traceparent": "00-" + trace0[2:] + "-" + span0 + "-01"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := continueTrace(t.Context(), tc.meta)
			sc := trace.SpanContextFromContext(ctx)
			if got := sc.IsValid(); got != tc.want {
				t.Fatalf("continued = %v, want %v (%v)", got, tc.want, sc)
			}
			wantOrigin := audit.TraceOriginServer
			if tc.want {
				wantOrigin = audit.TraceOriginClient
				if sc.TraceID().String() != trace0 || sc.SpanID().String() != span0 || !sc.IsRemote() {
					t.Errorf("span context %v, want the client's as a remote parent", sc)
				}
			}
			if got := audit.TraceOrigin(ctx); got != wantOrigin {
				t.Errorf("trace origin %q, want %q", got, wantOrigin)
			}
		})
	}
}
