package server

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/internal/cowmap"
)

// scopeName is the instrumentation scope of the server's spans and
// metrics (telemetry.ScopeName).
const scopeName = "github.com/mcp-secure/mcp-secure/server"

// observer makes the pipeline's spans and metrics through the
// OpenTelemetry API. Without providers (telemetry off) it does nothing
// and allocates nothing: every method checks on first.
//
// With telemetry on, what a call costs is kept to the spans themselves:
// span names and attributes that depend only on the tool are built once
// per registered tool (toolObs), metric attribute sets are cached, and
// the in-flight gauge is an atomic read when metrics are collected.
type observer struct {
	on     bool
	tracer trace.Tracer
	red    *audit.Redactor

	inFlight    atomic.Int64 // observed by mcp_secure.calls.in_flight
	rateLimited metric.Int64Counter
	opDuration  metric.Float64Histogram
	// sets caches the attribute sets of the duration metric: methods,
	// tools and error types are few (unknown tool names are all
	// "_OTHER").
	// Each is kept as the slice Record takes, so that a call builds
	// none.
	sets cowmap.Map[durationKey, []metric.RecordOption]
	// tools caches what the spans and metrics of a registered tool
	// share.
	tools cowmap.Map[string, *toolObs]
}

// enabled reports whether o makes spans and metrics.
func (o *observer) enabled() bool { return o != nil && o.on }

// noSpan is the span of a context without one: it records nothing.
var noSpan = trace.SpanFromContext(context.Background())

func newObserver(tp trace.TracerProvider, mp metric.MeterProvider, red *audit.Redactor) *observer {
	if tp == nil || mp == nil {
		return &observer{}
	}
	if red == nil {
		red = audit.NewRedactor(nil)
	}
	o := &observer{on: true, tracer: tp.Tracer(scopeName), red: red}
	m := mp.Meter(scopeName)
	// The errors are for invalid names, which these are not.
	_, _ = m.Int64ObservableUpDownCounter("mcp_secure.calls.in_flight", metric.WithUnit("{call}"),
		metric.WithDescription("tools/call requests being handled."),
		metric.WithInt64Callback(func(_ context.Context, obs metric.Int64Observer) error {
			obs.Observe(o.inFlight.Load())
			return nil
		}))
	o.rateLimited, _ = m.Int64Counter("mcp_secure.rate_limit.rejections", metric.WithUnit("{call}"),
		metric.WithDescription("Calls refused by the per-tool rate limit."))
	o.opDuration, _ = m.Float64Histogram("mcp.server.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of MCP requests handled by the server."))
	return o
}

// The MCP and GenAI semantic-convention attribute keys.
const (
	attrMethod     = "mcp.method.name"
	attrSession    = "mcp.session.id"
	attrProtocol   = "mcp.protocol.version"
	attrRequestID  = "jsonrpc.request.id"
	attrTool       = "gen_ai.tool.name"
	attrOperation  = "gen_ai.operation.name"
	attrErrorType  = "error.type"
	attrToolStatus = "mcp_secure.tool.status"
)

var (
	// opExecuteTool is the gen_ai.operation.name of a tool call.
	opExecuteTool = attribute.String(attrOperation, "execute_tool")
	// serverSpan are the options of a request's span (a server span), as
	// Start takes them: a slice made once, not one per call.
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)

// toolObs is what the spans and metrics of one registered tool share.
type toolObs struct {
	callSpan string // "tools/call <tool>"
	execSpan string // "execute_tool <tool>"
	toolName string // gen_ai.tool.name, redacted
	// exec is the handler span's attributes as it starts, as an
	// attrSource.
	exec attrSource
	// rejected is the rate-limit counter's attribute set.
	rejected []metric.AddOption
}

// toolOf returns the shared parts of a registered tool's telemetry.
func (o *observer) toolOf(tool string) *toolObs {
	return o.tools.Get(tool, func() *toolObs {
		name := capTool(o.red.String(tool))
		t := &toolObs{
			callSpan: "tools/call " + name,
			execSpan: "execute_tool " + tool,
			toolName: name,
			rejected: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(attrTool, tool)))},
		}
		t.exec = constAttrs{opExecuteTool, attribute.String(attrTool, tool)}
		return t
	})
}

// capTool bounds a tool name a client chose.
func capTool(name string) string {
	if len(name) > 256 {
		return name[:256]
	}
	return name
}

// middleware makes a server span for every request, continuing the trace
// of a traceparent in its _meta, and counts tools/call in flight.
func (o *observer) middleware(p *pipeline) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		if o == nil || !o.on {
			return next
		}
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			meta := metaOf(req)
			ctx = continueTrace(ctx, meta)
			name, tool := method, ""
			var t *toolObs // nil unless a registered tool is called
			toolName := "" // gen_ai.tool.name, redacted
			if ctr, ok := req.(*mcp.CallToolRequest); ok && ctr.Params != nil {
				tool = ctr.Params.Name
				if _, known := p.tools.get(tool); known {
					t = o.toolOf(tool)
					name, toolName = t.callSpan, t.toolName
				} else {
					toolName = capTool(o.red.String(tool))
					name = method + " " + toolName
				}
			}
			if tool != "" {
				o.inFlight.Add(1)
				defer o.inFlight.Add(-1)
			}
			ctx, span := o.tracer.Start(ctx, name, serverSpan...)
			defer span.End()
			// The request's duration is the span's when the span keeps
			// it (no clock read of its own), else measured here.
			timer, _ := span.(spanTimer)
			var start time.Time
			if timer == nil {
				start = time.Now()
			}
			// The attributes go on after the span starts, and only if it
			// is sampled (the SDK's samplers do not read them).
			recording := span.IsRecording()
			if recording {
				deferAttrs(span, o.requestAttrs(ctx, p, method, meta, req, toolName))
			}
			res, err := next(ctx, method, req)
			errType := ""
			if err != nil {
				errType = "_OTHER"
				var werr *jsonrpc.Error
				if errors.As(err, &werr) {
					errType = strconv.FormatInt(werr.Code, 10)
				}
			} else if ctr, ok := res.(*mcp.CallToolResult); ok && ctr.IsError {
				errType = "tool_error"
			}
			if errType != "" && recording {
				if errType == "tool_error" {
					deferAttrs(span, toolErrorAttrs)
				} else {
					span.SetAttributes(attribute.String(attrErrorType, errType))
				}
				span.SetStatus(codes.Error, errType)
			}
			if tool != "" && t == nil {
				tool = "_OTHER" // a client's made-up names must not grow the metric
			}
			span.End()
			var took time.Duration
			if timer != nil {
				took, _ = timer.Elapsed() // ended just now
			} else {
				took = time.Since(start)
			}
			o.opDuration.Record(ctx, took.Seconds(), o.durationSet(method, tool, errType)...)
			return res, err
		}
	}
}

// spanTimer is a span that tells its duration once it ended
// (server/telemetry's recording spans).
type spanTimer interface {
	Elapsed() (d time.Duration, ok bool)
}

// attrDeferrer is a span that builds the attributes of a source only
// when it is exported, off the call's path (server/telemetry's spans).
type attrDeferrer interface {
	DeferAttributes(src interface {
		AppendAttributes(dst []attribute.KeyValue) []attribute.KeyValue
	})
}

// attrSource gives attributes for attrDeferrer; what it reads must not
// change once it is handed to a span.
type attrSource = interface {
	AppendAttributes(dst []attribute.KeyValue) []attribute.KeyValue
}

// deferAttrs sets the attributes of src on a recording span: deferred
// when the span can, else now.
func deferAttrs(span trace.Span, src attrSource) {
	if d, ok := span.(attrDeferrer); ok {
		d.DeferAttributes(src)
		return
	}
	if c, ok := src.(constAttrs); ok {
		span.SetAttributes(c...)
		return
	}
	// Spans copy the attributes they are given (the SDK's do): the
	// slice is reused.
	bp := attrBufs.Get().(*[]attribute.KeyValue)
	*bp = src.AppendAttributes((*bp)[:0])
	span.SetAttributes(*bp...)
	clear(*bp)
	attrBufs.Put(bp)
}

// attrBufs are the slices deferAttrs builds attributes in for spans that
// take them at once.
var attrBufs = sync.Pool{New: func() any { return new([]attribute.KeyValue) }}

// constAttrs are attributes that never change, as an attrSource.
type constAttrs []attribute.KeyValue

func (c constAttrs) AppendAttributes(attrs []attribute.KeyValue) []attribute.KeyValue {
	return append(attrs, c...)
}

var (
	// toolErrorAttrs is the error.type of a request whose tool result
	// is an error.
	toolErrorAttrs attrSource = constAttrs{attribute.String(attrErrorType, "tool_error")}
	// statusOK is the tool status attribute of a call that ended ok.
	statusOK attrSource = constAttrs{attribute.String(attrToolStatus, audit.StatusOK)}
)

// requestAttrs are what a request's span says of it: the values are
// read now, the attributes built when the span is exported.
type requestAttrs struct {
	red                                  *audit.Redactor
	method, requestID, session, protocol string
	hasRequestID                         bool
	tool                                 string // gen_ai.tool.name for tools/call, redacted; else empty
}

// requestAttrs reads the attributes of a request's span; tool is the
// redacted gen_ai.tool.name for tools/call, else empty.
func (o *observer) requestAttrs(ctx context.Context, p *pipeline, method string, meta map[string]any, req mcp.Request, tool string) *requestAttrs {
	ra := &requestAttrs{red: o.red, method: method, tool: tool}
	ra.requestID, ra.hasRequestID = requestIDOf(ctx, meta)
	if r, ok := req.(request); ok {
		id := p.sessions.identify(r)
		ra.session, ra.protocol = id.session, id.protocol
	}
	return ra
}

// AppendAttributes appends the request's attributes (the request id
// redacted).
func (ra *requestAttrs) AppendAttributes(attrs []attribute.KeyValue) []attribute.KeyValue {
	attrs = append(attrs, attribute.String(attrMethod, ra.method))
	if ra.hasRequestID {
		attrs = append(attrs, attribute.String(attrRequestID, ra.red.String(ra.requestID)))
	}
	if ra.session != "" {
		attrs = append(attrs, attribute.String(attrSession, ra.session))
	}
	if ra.protocol != "" {
		attrs = append(attrs, attribute.String(attrProtocol, ra.protocol))
	}
	if ra.tool != "" {
		attrs = append(attrs, attribute.String(attrTool, ra.tool), opExecuteTool)
	}
	return attrs
}

// traceCarrier holds the trace context of a request's _meta for the
// propagator, without building a map.
type traceCarrier struct{ traceparent, tracestate string }

func (c traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.traceparent
	case "tracestate":
		return c.tracestate
	}
	return ""
}

func (traceCarrier) Set(string, string) {}

func (c traceCarrier) Keys() []string {
	if c.tracestate == "" {
		return []string{"traceparent"}
	}
	return []string{"traceparent", "tracestate"}
}

// metaOf returns a request's _meta. Params absent from the wire are a
// typed nil pointer (notifications/initialized without params), whose
// GetMeta would panic.
func metaOf(req mcp.Request) map[string]any {
	params := req.GetParams()
	if params == nil {
		return nil
	}
	if v := reflect.ValueOf(params); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return params.GetMeta()
}

// durationKey names one attribute set of the duration metric.
type durationKey struct{ method, tool, errType string }

// durationSet is the cached attribute set of one operation duration.
func (o *observer) durationSet(method, tool, errType string) []metric.RecordOption {
	return o.sets.Get(durationKey{method, tool, errType}, func() []metric.RecordOption {
		attrs := []attribute.KeyValue{attribute.String(attrMethod, method)}
		if tool != "" {
			attrs = append(attrs, attribute.String(attrTool, tool))
		}
		if errType != "" {
			attrs = append(attrs, attribute.String(attrErrorType, errType))
		}
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	})
}

// start begins a child span of the pipeline's; without telemetry it
// returns ctx and a span that records nothing.
func (o *observer) start(ctx context.Context, name string) (context.Context, trace.Span) {
	if o == nil || !o.on {
		return ctx, noSpan
	}
	return o.tracer.Start(ctx, name)
}

// startTool begins the span of a registered tool's handler.
func (o *observer) startTool(ctx context.Context, tool string) (context.Context, trace.Span) {
	if o == nil || !o.on {
		return ctx, noSpan
	}
	t := o.toolOf(tool)
	ctx, span := o.tracer.Start(ctx, t.execSpan)
	if span.IsRecording() {
		deferAttrs(span, t.exec)
	}
	return ctx, span
}

// endTool ends a handler's span with the call's status.
func (o *observer) endTool(span trace.Span, status string) {
	if o == nil || !o.on {
		return
	}
	if status == audit.StatusOK {
		if span.IsRecording() {
			deferAttrs(span, statusOK)
		}
	} else {
		span.SetAttributes(attribute.String(attrToolStatus, status), attribute.String(attrErrorType, status))
		span.SetStatus(codes.Error, status)
	}
	span.End()
}

// endValidation ends the span of argument validation.
func (o *observer) endValidation(span trace.Span, err error) {
	if o == nil || !o.on {
		return
	}
	if err != nil {
		span.SetAttributes(attribute.String(attrErrorType, "invalid_arguments"))
		span.SetStatus(codes.Error, "invalid arguments")
	}
	span.End()
}

// rejected counts a call to a registered tool refused by the rate limit.
func (o *observer) rejected(ctx context.Context, tool string) {
	if o != nil && o.on {
		o.rateLimited.Add(ctx, 1, o.toolOf(tool).rejected...)
	}
}
