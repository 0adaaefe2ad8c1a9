package audit

import "context"

// Where a record's trace_id came from (Record.TraceOrigin). A server
// continues a trace whose traceparent a client sent in _meta, as
// OpenTelemetry asks, so the client chose that trace id: it may be any
// id, another session's included. The record says so, and only the
// span_id (always the server's own) and the decision ids tie records
// together for certain.
const (
	// TraceOriginServer: the server began the trace; the id is its own.
	TraceOriginServer = "server"
	// TraceOriginClient: the trace continues the traceparent a client
	// sent; the trace id is the client's claim.
	TraceOriginClient = "client"
)

type clientTraceKey struct{}

// WithClientTrace marks ctx as carrying a trace continued from a
// client's traceparent.
func WithClientTrace(ctx context.Context) context.Context {
	return context.WithValue(ctx, clientTraceKey{}, true)
}

// TraceOrigin returns TraceOriginClient for a context WithClientTrace
// marked, else TraceOriginServer.
func TraceOrigin(ctx context.Context) string {
	if v, _ := ctx.Value(clientTraceKey{}).(bool); v {
		return TraceOriginClient
	}
	return TraceOriginServer
}
