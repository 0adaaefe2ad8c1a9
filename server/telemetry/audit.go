package telemetry

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/internal/cowmap"
)

// Auditor records decisions; *audit.Logger implements it, and so does
// what [Audit] returns.
type Auditor interface {
	Log(ctx context.Context, r audit.Record) error
}

// ScopeName is the instrumentation scope of the server's spans and
// metrics.
const ScopeName = "github.com/mcp-secure/mcp-secure/server"

// Attribute keys of decision spans.
const (
	AttrDecisionID       = "mcp_secure.decision_id"
	AttrParentDecisionID = "mcp_secure.parent_decision_id"
	AttrDecisionPath     = "mcp_secure.decision.path"
	AttrDecisionKind     = "mcp_secure.decision.kind"
	AttrDecisionResult   = "mcp_secure.decision.result"
	// The dry-run policy's would-be decision, never enforced: enforced
	// is always false, so no reader can mistake it for the decision.
	AttrDryRunEnforced   = "mcp_secure.dry_run.enforced"
	AttrDryRunResult     = "mcp_secure.dry_run.result"
	AttrDryRunReasons    = "mcp_secure.dry_run.reasons"
	AttrDecisionReasons  = "mcp_secure.decision.reasons"
	AttrSecurityDecision = "gen_ai.security.decision.type"
	AttrSecurityPolicyID = "gen_ai.security.policy.id"
	AttrToolName         = "gen_ai.tool.name"
	AttrToolStatus       = "mcp_secure.tool.status"
	// AttrBundleRevision is the revision of the policy bundle in force
	// (the audit label bundle_revision), when the policy is a bundle.
	AttrBundleRevision = "mcp_secure.bundle.revision"
	// AttrTarget prefixes what a guard decided on: target.host,
	// target.ip, target.port, target.path, target.operation,
	// target.executable (never a command's arguments).
	AttrTarget = "mcp_secure.target."
)

// Metric names.
const (
	MetricDecisions        = "mcp_secure.decisions"
	MetricDecisionDuration = "mcp_secure.decision.duration"
	MetricToolDuration     = "mcp_secure.tool.duration"
	MetricAuditFailures    = "mcp_secure.audit.write_failures"
)

// SpanDecide names the span of a decision of the given kind (tool_call,
// network, filesystem, command, validation, rate_limit).
func SpanDecide(kind string) string { return "decide " + kind }

// auditor is the Auditor Audit returns.
type auditor struct {
	next     Auditor
	tracer   trace.Tracer
	red      *audit.Redactor
	latency  metric.Float64Histogram
	tool     metric.Float64Histogram
	failures metric.Int64Counter
	// decisions and tools cache the metrics' attribute sets: kinds,
	// results, tools and statuses are few. A decision's count is an
	// atomic add, observed by mcp_secure.decisions when metrics are
	// collected; every count is kept (kinds and results are the server's
	// own words, never a client's).
	decisions cowmap.Map[pair, *decisionSet]
	tools     cowmap.Map[pair, *toolSet]
	// latencyH and toolH are latency and tool when they are this
	// package's histograms (metrics.go): the sets above then keep their
	// points, recorded to without a look-up.
	latencyH, toolH *histogram
	// label reads a label next adds to its records; nil when it adds none.
	label func(key string) string
}

// pair is two attribute values.
type pair struct{ a, b string }

// decisionSet is the attribute set of decisions of one kind and result
// (as Record and Observe take it), and how many were taken.
type decisionSet struct {
	record []metric.RecordOption
	set    metric.MeasurementOption
	n      atomic.Int64
	pt     *point // of latencyH, if set
}

func (a *auditor) decisionSet(kind, result string) *decisionSet {
	return a.decisions.Get(pair{kind, result}, func() *decisionSet {
		attrs := attribute.NewSet(attribute.String(AttrDecisionKind, kind), attribute.String(AttrDecisionResult, result))
		set := metric.WithAttributeSet(attrs)
		d := &decisionSet{set: set, record: []metric.RecordOption{set}}
		if a.latencyH != nil {
			d.pt = a.latencyH.pointOf(attrs)
		}
		return d
	})
}

// toolSet is the attribute set of tool durations of one tool and
// status, as Record takes it, and its point of toolH, if set.
type toolSet struct {
	record []metric.RecordOption
	pt     *point
}

func (a *auditor) toolSet(tool, status string) *toolSet {
	return a.tools.Get(pair{tool, status}, func() *toolSet {
		attrs := attribute.NewSet(attribute.String(AttrToolName, a.red.String(tool)), attribute.String(AttrToolStatus, status))
		t := &toolSet{record: []metric.RecordOption{metric.WithAttributeSet(attrs)}}
		if a.toolH != nil {
			t.pt = a.toolH.pointOf(attrs)
		}
		return t
	})
}

// observeDecisions reports the decision counts.
func (a *auditor) observeDecisions(_ context.Context, o metric.Int64Observer) error {
	a.decisions.Each(func(d *decisionSet) {
		o.Observe(d.n.Load(), d.set)
	})
	return nil
}

var _ Auditor = (*auditor)(nil)

// labeler is an Auditor that labels its records (*audit.Logger).
type labeler interface {
	Label(key string) string
}

// Audit wraps next so that each decision it records is a span and in the
// metrics, and each record carries the trace_id and span_id of its span,
// and its trace_origin (audit.TraceOrigin: "client" when the trace
// continues a client's traceparent, which chose the trace id):
//   - a tools decision (kind tool_call) annotates the span in ctx, which
//     the pipeline started around the decision;
//   - a guard's decision (network, filesystem, command) and a refusal
//     before the policy (validation, rate_limit) get a child span of
//     their own, spanning the decision's duration;
//   - a tool_result record is counted in the tool duration histogram and
//     carries the ids of the span in ctx.
//
// Strings a client could choose are redacted with red before they reach
// a span; arguments never do.
func Audit(next Auditor, tp trace.TracerProvider, mp metric.MeterProvider, red *audit.Redactor) Auditor {
	if red == nil {
		red = audit.NewRedactor(nil)
	}
	m := mp.Meter(ScopeName)
	a := &auditor{next: next, tracer: tp.Tracer(ScopeName), red: red}
	a.decisions.Unbounded = true
	if l, ok := next.(labeler); ok {
		a.label = l.Label
	}
	// The errors are for invalid names, which these are not.
	_, _ = m.Int64ObservableCounter(MetricDecisions, metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions taken, by kind (decision point) and result."),
		metric.WithInt64Callback(a.observeDecisions))
	a.latency, _ = m.Float64Histogram(MetricDecisionDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to decide, by kind and result (for tool_call: from the request's arrival)."),
		metric.WithExplicitBucketBoundaries(5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1))
	a.tool, _ = m.Float64Histogram(MetricToolDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of allowed tool calls, by tool and status."))
	a.latencyH, _ = a.latency.(*histogram)
	a.toolH, _ = a.tool.(*histogram)
	a.failures, _ = m.Int64Counter(MetricAuditFailures, metric.WithUnit("{record}"),
		metric.WithDescription("Audit records that could not be written (each failed its call)."))
	return a
}

func (a *auditor) Log(ctx context.Context, r audit.Record) error {
	bs := a.before(ctx, &r)
	err := a.next.Log(ctx, r)
	a.after(ctx, bs, &r, err)
	return err
}

// batchAuditor is an Auditor that writes several records together (one
// file lock, one write, one sync).
type batchAuditor interface {
	LogBatch(ctx context.Context, rs []audit.Record) error
}

// LogBatch is Log of every record of rs, which next writes together when
// it can: the spans and metrics of each as Log makes them, the trace ids
// set in rs itself.
func (a *auditor) LogBatch(ctx context.Context, rs []audit.Record) error {
	b, ok := a.next.(batchAuditor)
	if !ok {
		for _, r := range rs {
			if err := a.Log(ctx, r); err != nil {
				return err
			}
		}
		return nil
	}
	var small [4]batchSpan
	spans := small[:0]
	for i := range rs {
		spans = append(spans, a.before(ctx, &rs[i]))
	}
	err := b.LogBatch(ctx, rs)
	for i := range rs {
		a.after(ctx, spans[i], &rs[i], err)
	}
	return err
}

// batchSpan is the span of one record: its own (a guard's decision,
// ended at end once the record is written) or the request's.
type batchSpan struct {
	span trace.Span
	own  bool
	end  time.Time
}

// before opens r's span (a guard's decision has its own; a tool call's is
// the request's) and puts the span's ids on r.
func (a *auditor) before(ctx context.Context, r *audit.Record) batchSpan {
	var bs batchSpan
	switch r.Kind {
	case audit.KindNetwork, audit.KindFilesystem, audit.KindCommand, audit.KindValidation, audit.KindRateLimit:
		bs.end, bs.own = time.Now(), true
		_, bs.span = a.tracer.Start(ctx, SpanDecide(r.Kind), trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithTimestamp(bs.end.Add(-time.Duration(r.DurationNS))))
		a.annotate(bs.span, r)
	case audit.KindToolCall:
		bs.span = trace.SpanFromContext(ctx)
		a.annotate(bs.span, r)
	default:
		bs.span = trace.SpanFromContext(ctx)
	}
	if sc := bs.span.SpanContext(); sc.IsValid() {
		r.TraceID, r.SpanID = hexIDs(sc.TraceID(), sc.SpanID())
		r.TraceOrigin = audit.TraceOrigin(ctx)
	}
	return bs
}

// after counts r's write in the metrics, marks its span when the write
// failed (err), and ends the span when it is r's own.
func (a *auditor) after(ctx context.Context, bs batchSpan, r *audit.Record, err error) {
	span := bs.span
	if err != nil {
		a.failures.Add(ctx, 1, metric.WithAttributes(attribute.String(AttrDecisionKind, r.Kind)))
		span.SetStatus(codes.Error, "audit write failed")
	}
	switch r.Kind {
	case audit.KindToolResult:
		// tool_result records are of registered tools only: few names.
		t := a.toolSet(r.Tool, r.Status)
		if v := time.Duration(r.DurationNS).Seconds(); t.pt != nil {
			a.toolH.recordTo(t.pt, v)
		} else {
			a.tool.Record(ctx, v, t.record...)
		}
	case audit.KindSummary, audit.KindGenesis:
	default:
		d := a.decisionSet(r.Kind, r.Result)
		d.n.Add(1)
		if v := time.Duration(r.DurationNS).Seconds(); d.pt != nil {
			a.latencyH.recordTo(d.pt, v)
		} else {
			a.latency.Record(ctx, v, d.record...)
		}
	}
	if bs.own {
		span.End(trace.WithTimestamp(bs.end))
	}
}

// hexIDs are the hex forms of a trace and a span id, in one allocation.
func hexIDs(tid trace.TraceID, sid trace.SpanID) (string, string) {
	var b [48]byte
	hex.Encode(b[:32], tid[:])
	hex.Encode(b[32:], sid[:])
	s := string(b[:])
	return s[:32], s[32:]
}

// annotate puts the decision on its span: ids, path, result, redacted
// reasons, and what a guard decided on. What every decision has is
// deferred to the span's export (decisionAttrs): the call pays for
// neither the attributes nor the redaction of the tool's name. What
// few decisions have (reasons, a guard's target, a dry run) is built
// now, from values the record's owner may reuse.
func (a *auditor) annotate(span trace.Span, r *audit.Record) {
	if !span.IsRecording() {
		return
	}
	d := &decisionAttrs{a: a, id: r.DecisionID, kind: r.Kind, result: r.Result, path: r.Path,
		parent: r.ParentDecisionID, rev: a.bundleRevision(r), tool: r.Tool}
	n := 0
	if len(r.Reasons) > 0 {
		n++
	}
	in, _ := r.Input.(map[string]any)
	if len(in) > 0 {
		for _, k := range targetKeys {
			if _, ok := in[k]; ok {
				n++
			}
		}
	}
	if r.DryRun != nil {
		n += 3
	}
	if n > 0 {
		d.more = a.rareAttrs(make([]attribute.KeyValue, 0, n), r, in)
	}
	deferAttrs(span, d)
	if r.Result == audit.ResultError {
		span.SetStatus(codes.Error, "the policy could not be evaluated")
	}
}

// rareAttrs appends the attributes of the parts of r that few decisions
// have: reasons, what a guard decided on (in, r's input), a dry run.
func (a *auditor) rareAttrs(attrs []attribute.KeyValue, r *audit.Record, in map[string]any) []attribute.KeyValue {
	if len(r.Reasons) > 0 {
		reasons := make([]string, len(r.Reasons))
		for i, s := range r.Reasons {
			reasons[i] = capped(a.red.String(s))
		}
		attrs = append(attrs, attribute.StringSlice(AttrDecisionReasons, reasons))
	}
	for i, k := range targetKeys {
		switch v := in[k].(type) {
		case string:
			if v != "" {
				attrs = append(attrs, attribute.String(targetAttrs[i], capped(a.red.String(v))))
			}
		case int:
			attrs = append(attrs, attribute.Int(targetAttrs[i], v))
		}
	}
	if d := r.DryRun; d != nil {
		result := audit.ResultDeny
		switch {
		case d.Error != "":
			result = audit.ResultError
		case d.Allow:
			result = audit.ResultAllow
		}
		attrs = append(attrs, attribute.Bool(AttrDryRunEnforced, false), attribute.String(AttrDryRunResult, result))
		if len(d.Reasons) > 0 {
			reasons := make([]string, len(d.Reasons))
			for i, s := range d.Reasons {
				reasons[i] = capped(a.red.String(s))
			}
			attrs = append(attrs, attribute.StringSlice(AttrDryRunReasons, reasons))
		}
	}
	return attrs
}

// decisionAttrs are the attributes of a decision's span, built when the
// span is exported: the record's strings (immutable), and the
// attributes built at the decision (more), which it owns.
type decisionAttrs struct {
	a                                         *auditor
	id, kind, result, path, parent, rev, tool string
	more                                      []attribute.KeyValue
}

var _ AttributeSource = (*decisionAttrs)(nil)

// AppendAttributes appends the decision's attributes, in the order the
// span always had them.
func (d *decisionAttrs) AppendAttributes(attrs []attribute.KeyValue) []attribute.KeyValue {
	attrs = append(attrs,
		attribute.String(AttrDecisionID, d.id),
		attribute.String(AttrDecisionKind, d.kind),
		attribute.String(AttrDecisionResult, d.result),
		attribute.String(AttrSecurityDecision, securityDecision(d.result)),
	)
	if d.path != "" {
		attrs = append(attrs, attribute.String(AttrDecisionPath, d.path), attribute.String(AttrSecurityPolicyID, d.path))
	}
	if d.parent != "" {
		attrs = append(attrs, attribute.String(AttrParentDecisionID, d.parent))
	}
	if d.rev != "" {
		attrs = append(attrs, attribute.String(AttrBundleRevision, capped(d.rev)))
	}
	if d.tool != "" {
		attrs = append(attrs, attribute.String(AttrToolName, capped(d.a.red.String(d.tool))))
	}
	return append(attrs, d.more...)
}

// deferAttrs sets the attributes of src on sp: deferred to its export
// when sp is this package's, else now.
func deferAttrs(sp trace.Span, src AttributeSource) {
	if s, ok := sp.(*span); ok {
		s.DeferAttributes(src)
		return
	}
	// Spans copy the attributes they are given (the SDK's do): the
	// slice is reused.
	bp := attrBufs.Get().(*[]attribute.KeyValue)
	*bp = src.AppendAttributes((*bp)[:0])
	sp.SetAttributes(*bp...)
	clear(*bp)
	attrBufs.Put(bp)
}

// attrBufs are the slices deferAttrs builds attributes in for other
// tracers' spans.
var attrBufs = sync.Pool{New: func() any { return new([]attribute.KeyValue) }}

// targetKeys are the keys of a guard's input that its span carries, as
// targetAttrs.
var (
	targetKeys  = []string{"phase", "host", "ip", "port", "path", "operation", "executable"}
	targetAttrs = func() []string {
		out := make([]string, len(targetKeys))
		for i, k := range targetKeys {
			out[i] = AttrTarget + k
		}
		return out
	}()
)

// bundleRevision is the record's bundle_revision label: its own, else
// the revision that decided it, else the one next will add.
func (a *auditor) bundleRevision(r *audit.Record) string {
	if r.Revision != nil && r.Labels == nil {
		return *r.Revision
	}
	if rev, ok := r.Labels[audit.LabelBundleRevision]; ok || a.label == nil {
		return rev
	}
	return a.label(audit.LabelBundleRevision)
}

// securityDecision maps a result to the GenAI security decision type.
func securityDecision(result string) string {
	if result == audit.ResultAllow {
		return "allow"
	}
	return "deny"
}

// maxAttr caps a string attribute, as the audit log caps its values.
const maxAttr = 1024

func capped(s string) string {
	if len(s) <= maxAttr {
		return s
	}
	return strings.ToValidUTF8(s[:maxAttr], "") + "...(" + strconv.Itoa(len(s)) + " bytes)"
}
