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
)

// scopeName is the instrumentation scope of the server's spans and
// metrics (telemetry.ScopeName).
const scopeName = "github.com/mcp-secure/mcp-secure/server"

// observer makes the pipeline's spans and metrics through the
// OpenTelemetry API. Without providers (telemetry off) it does nothing
// and allocates nothing: every method checks on first.
type observer struct {
	on     bool
	tracer trace.Tracer
	red    *audit.Redactor

	inFlight    metric.Int64UpDownCounter
	rateLimited metric.Int64Counter
	opDuration  metric.Float64Histogram
	// sets caches the attribute sets of the duration metric: methods,
	// tools and error types are few (unknown tool names are all
	// "_OTHER").
	sets  sync.Map // string -> metric.MeasurementOption
	nsets atomic.Int32
}

// maxSets bounds the cached attribute sets.
const maxSets = 1024

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
	o.inFlight, _ = m.Int64UpDownCounter("mcp_secure.calls.in_flight", metric.WithUnit("{call}"),
		metric.WithDescription("tools/call requests being handled."))
	o.rateLimited, _ = m.Int64Counter("mcp_secure.rate_limit.rejections", metric.WithUnit("{call}"),
		metric.WithDescription("Calls refused by the per-tool rate limit."))
	o.opDuration, _ = m.Float64Histogram("mcp.server.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of MCP requests handled by the server."))
	return o
}

// The MCP and GenAI semantic-convention attribute keys.
const (
	attrMethod    = "mcp.method.name"
	attrSession   = "mcp.session.id"
	attrProtocol  = "mcp.protocol.version"
	attrRequestID = "jsonrpc.request.id"
	attrTool      = "gen_ai.tool.name"
	attrOperation = "gen_ai.operation.name"
	attrErrorType = "error.type"
)

// middleware makes a server span for every request, continuing the trace
// of a traceparent in its _meta, and counts tools/call in flight.
func (o *observer) middleware(p *pipeline) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		if o == nil || !o.on {
			return next
		}
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			start := time.Now()
			meta := metaOf(req)
			ctx = continueTrace(ctx, meta)
			name, tool := method, ""
			if ctr, ok := req.(*mcp.CallToolRequest); ok && ctr.Params != nil {
				tool = o.red.String(ctr.Params.Name)
				if len(tool) > 256 {
					tool = tool[:256]
				}
				name = method + " " + tool
			}
			attrs := make([]attribute.KeyValue, 0, 8)
			attrs = append(attrs, attribute.String(attrMethod, method))
			if id, ok := meta[requestIDMeta].(string); ok {
				attrs = append(attrs, attribute.String(attrRequestID, o.red.String(id)))
			}
			if r, ok := req.(request); ok {
				id := p.sessions.identify(r)
				if id.session != "" {
					attrs = append(attrs, attribute.String(attrSession, id.session))
				}
				if id.protocol != "" {
					attrs = append(attrs, attribute.String(attrProtocol, id.protocol))
				}
			}
			if tool != "" {
				attrs = append(attrs, attribute.String(attrTool, tool), attribute.String(attrOperation, "execute_tool"))
				o.inFlight.Add(ctx, 1)
				defer o.inFlight.Add(ctx, -1)
			}
			ctx, span := o.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
			defer span.End()
			res, err := next(ctx, method, req)
			errType := ""
			var werr *jsonrpc.Error
			switch {
			case errors.As(err, &werr):
				errType = strconv.FormatInt(werr.Code, 10)
			case err != nil:
				errType = "_OTHER"
			default:
				if ctr, ok := res.(*mcp.CallToolResult); ok && ctr.IsError {
					errType = "tool_error"
				}
			}
			if errType != "" {
				span.SetAttributes(attribute.String(attrErrorType, errType))
				span.SetStatus(codes.Error, errType)
			}
			if _, known := p.tools[tool]; tool != "" && !known {
				tool = "_OTHER" // a client's made-up names must not grow the metric
			}
			o.opDuration.Record(ctx, time.Since(start).Seconds(), o.durationSet(method, tool, errType))
			return res, err
		}
	}
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

// durationSet is the cached attribute set of one operation duration.
func (o *observer) durationSet(method, tool, errType string) metric.MeasurementOption {
	key := method + "\x00" + tool + "\x00" + errType
	if v, ok := o.sets.Load(key); ok {
		return v.(metric.MeasurementOption)
	}
	attrs := []attribute.KeyValue{attribute.String(attrMethod, method)}
	if tool != "" {
		attrs = append(attrs, attribute.String(attrTool, tool))
	}
	if errType != "" {
		attrs = append(attrs, attribute.String(attrErrorType, errType))
	}
	v := metric.WithAttributeSet(attribute.NewSet(attrs...))
	if o.nsets.Add(1) <= maxSets {
		o.sets.Store(key, v)
	}
	return v
}

// start begins a child span of the pipeline's; without telemetry it
// returns ctx and a span that records nothing.
func (o *observer) start(ctx context.Context, name string) (context.Context, trace.Span) {
	if o == nil || !o.on {
		return ctx, noSpan
	}
	return o.tracer.Start(ctx, name)
}

// startTool begins the span of a tool's handler.
func (o *observer) startTool(ctx context.Context, tool string) (context.Context, trace.Span) {
	if o == nil || !o.on {
		return ctx, noSpan
	}
	return o.tracer.Start(ctx, "execute_tool "+tool, trace.WithAttributes(
		attribute.String(attrOperation, "execute_tool"), attribute.String(attrTool, tool)))
}

// endTool ends a handler's span with the call's status.
func (o *observer) endTool(span trace.Span, status string) {
	if o == nil || !o.on {
		return
	}
	span.SetAttributes(attribute.String("mcp_secure.tool.status", status))
	if status != audit.StatusOK {
		span.SetAttributes(attribute.String(attrErrorType, status))
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

// rejected counts a call refused by the rate limit.
func (o *observer) rejected(ctx context.Context, tool string) {
	if o != nil && o.on {
		o.rateLimited.Add(ctx, 1, metric.WithAttributes(attribute.String(attrTool, tool)))
	}
}
