// Package telemetry connects the server to observability stacks: it
// sets up OpenTelemetry tracing and metrics exported over OTLP, records
// every audited decision as a span and in metrics, stamps audit records
// with their trace and span ids, and uploads decision events to a
// service that speaks OPA's decision-log API.
//
// It is the only package of the server that imports the OpenTelemetry
// SDK and exporters; the rest of the server speaks the OpenTelemetry API
// (go.opentelemetry.io/otel/trace and metric), whose no-op
// implementations cost nothing when telemetry is off.
//
// # Configuration
//
// [Resolve] reads the standard OTEL_* environment variables and the
// policy's telemetry section ([Settings]); the policy wins. Telemetry is
// off unless the policy enables it or an OTLP endpoint is set in the
// environment; OTEL_SDK_DISABLED=true or telemetry.enabled: false turn it
// off whatever else is set. Nothing is ever written to stdout, which
// carries the MCP protocol: exporter errors go to the server's stderr
// logger.
//
// # Spans
//
// The server makes one span per MCP request (named "tools/call
// web_search", with mcp.method.name, gen_ai.tool.name, jsonrpc.request.id,
// mcp.protocol.version, mcp.session.id and error.type), continuing a
// trace whose traceparent arrives in the request's _meta, and children for
// argument validation and the tool's handler. [Audit] adds a span for
// each decision that is audited (the tools decision, and every guarded
// connection, path and command), carrying mcp_secure.decision_id, the
// decision path, its result and its redacted reasons, and writes the
// trace_id and span_id into the audit record with trace_origin: "client"
// when the trace continues a client's traceparent (the client chose the
// trace id, so it correlates only what the client claims), "server" when
// the server began it. A malformed or all-zero traceparent is ignored.
// Arguments never appear in a span.
//
// # Cost
//
// Off, the server has no providers and makes no span. On, what a call
// pays is kept small: [New]'s tracer provider is this package's own
// implementation of the trace API (one allocation per span, which is
// also the context Start returns; the OTLP conversion and upload on the
// exporter's goroutine, OTEL_BSP_* batching with a bounded queue that
// drops rather than blocks), and its meter provider is the SDK's with
// float64 histograms of its own, recorded with atomics. The attributes
// of the request, decision and handler spans are deferred
// ([AttributeSource]): the call keeps the strings they are made of, and
// the exporter builds and redacts them. Samplers are the SDK's;
// exemplars are off unless OTEL_METRICS_EXEMPLAR_FILTER asks for them.
//
// # Decision logs
//
// [DecisionLogs] feeds the audit records, as written to the local log
// (redacted and masked), to OPA's own decision-log plugin, which batches
// them, gzips them and uploads them to the configured service, dropping
// the oldest when its buffer is full. The local JSON Lines file stays the
// record of truth: an upload that fails never fails a call.
package telemetry
