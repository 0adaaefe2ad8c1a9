package server

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// continueTrace makes the traceparent (and tracestate) of a request's
// _meta the remote parent of ctx, and marks ctx so that the audit records
// of the request say their trace id is the client's (audit.WithClientTrace).
// A traceparent that is not a string, malformed, or all zeros is ignored:
// the server begins a trace of its own.
func continueTrace(ctx context.Context, meta map[string]any) context.Context {
	tp, ok := meta["traceparent"].(string)
	if !ok {
		return ctx
	}
	ts, _ := meta["tracestate"].(string)
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), traceCarrier{traceparent: tp, tracestate: ts}))
	if !sc.IsValid() {
		return ctx
	}
	return audit.WithClientTrace(trace.ContextWithRemoteSpanContext(ctx, sc))
}
