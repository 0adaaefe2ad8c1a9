package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/jsonschema"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Decider answers policy decisions; *engine.Engine implements it.
type Decider interface {
	Decide(ctx context.Context, point engine.Point, input ast.Value) (engine.Decision, error)
}

// toolDecider is a Decider that decides tool calls on their typed input,
// building the input document only when it evaluates the policy (a
// memoised decision needs only some members); RefuseTool gives the
// reasons of a call the pipeline refuses whatever the policy answers (an
// unknown tool), without asking whether the policy would allow it.
// *engine.Engine is one.
type toolDecider interface {
	DecideTool(ctx context.Context, in engine.ToolInput) (engine.Decision, error)
	RefuseTool(ctx context.Context, in engine.ToolInput) (engine.Decision, error)
}

var _ toolDecider = (*engine.Engine)(nil)

// decideTool decides a tool call on in; refuse says the pipeline refuses
// it whatever the answer, and wants only the policy's reasons.
func (p *pipeline) decideTool(ctx context.Context, in engine.ToolInput, refuse bool) (engine.Decision, error) {
	td, ok := p.decide.(toolDecider)
	switch {
	case !ok:
		return p.decide.Decide(ctx, engine.Tools, in.Value())
	case refuse:
		return td.RefuseTool(ctx, in)
	}
	return td.DecideTool(ctx, in)
}

// Limiter is a per-tool rate limiter; *ratelimit.Limiter implements it.
type Limiter interface {
	Allow(tool string) (ok bool, retryAfter time.Duration)
}

// Auditor records decisions; *audit.Logger implements it. A failed Log
// fails the call.
type Auditor interface {
	Log(ctx context.Context, r audit.Record) error
}

// registeredTool is a plugin tool with its compiled schema.
type registeredTool struct {
	plugin.Tool
	plugin        string
	pluginVersion string
	schema        *toolSchema
	// schemaDoc is the decoded input schema, kept when it marks values
	// with a checked format (annotated); nil otherwise.
	schemaDoc map[string]any
	annotated bool
}

// pipeline runs every tools/call: look up, validate, rate limit, decide,
// run, audit. It is the one place where outcomes become MCP results.
type pipeline struct {
	tools toolTable
	// pending are the plugins that may serve a tool later (dynamic.go).
	pending []plugin.Pending
	// redact redacts what handlers pass on to the client (notify.go).
	redact  *audit.Redactor
	decide  Decider
	limit   Limiter
	audit   Auditor
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	// omitArgs keeps tool arguments out of audit records.
	omitArgs bool

	// sessions binds client identity to its session.
	sessions *sessions
	// permits memoises whether a caller may use a tool at all.
	permits permitMemo
	// permitFailures counts the permitted answers that are denials only
	// because the policy could not be evaluated (a deadline, a cancelled
	// call): the catalog's view changes with it, so an answer built on
	// one is not kept.
	permitFailures atomic.Uint64
	// budget coalesces the records of refusals a client repeats for free.
	budget *denialBudget
	// stopped ends when the server cancels every call in flight
	// (shutdown); cancelAll ends it.
	stopped   context.Context
	cancelAll func()

	// dry decides calls again under the dry-run policy; nil: none.
	dry DryRunner

	// The guards' pre-checks for schema-annotated arguments; nil denies.
	paths    pathChecker
	urls     urlChecker
	commands commandChecker

	// obs makes spans and metrics; it does nothing when telemetry is off.
	obs *observer

	// serverInfo is the server's name and version, which answers of the
	// 2026-07-28 protocol carry (newprotocol.go); serverInfoMeta is their
	// _meta, encoded.
	serverInfo     *mcp.Implementation
	serverInfoMeta serverInfoMeta
}

// recordPairs hold a call's record and its result's while they are
// logged together: a record is large, and an interface call's argument
// escapes.
var recordPairs = sync.Pool{New: func() any { return new([2]audit.Record) }}

// callInfo is what the pipeline knows about a call before it runs.
type callInfo struct {
	name       string
	args       json.RawMessage
	requestID  string
	decisionID string
	sessionID  string
	client     plugin.Client
	protocol   string
	history    *engine.SessionHistory // the session's earlier decisions
	// noHistory: history was left out, the policy cannot read it.
	noHistory bool
	progress  plugin.Progress // nil: the client asked for none
	session   plugin.Session
}

// infoOf reads a call: its tool, arguments and JSON-RPC id from the
// request, who sent it from the session, and the session's history when
// the policy under ctx may read it.
func (p *pipeline) infoOf(ctx context.Context, req *mcp.CallToolRequest) callInfo {
	ci := callInfo{decisionID: audit.NewID()}
	var meta map[string]any
	if req.Params != nil {
		ci.name = req.Params.Name
		ci.args = req.Params.Arguments
		meta = req.Params.Meta
	}
	if id, ok := requestIDOf(ctx, meta); ok {
		ci.requestID = id
	}
	id := p.sessions.identify(req)
	ci.sessionID, ci.client, ci.protocol = id.session, id.client, id.protocol
	if p.readsSession(ctx) {
		ci.history = p.sessionHistory(ci.sessionID)
	} else {
		ci.noHistory = true
	}
	ci.progress, ci.session = p.notifiers(req)
	return ci
}

// guardCall is the call as the guards audit it.
func (ci callInfo) guardCall() guard.Call {
	return guard.Call{Tool: ci.name, RequestID: ci.requestID, DecisionID: ci.decisionID, SessionID: ci.sessionID}
}

// call runs the pipeline for one tools/call. It never returns a Go error:
// every outcome is a tool result, denials included.
func (p *pipeline) call(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	res := p.outcome(ctx, req)
	// structuredContent must match a tool's declared output schema, and
	// clients check it even on errors: the server's own error details go
	// only in the text for such tools.
	if res.IsError && req.Params != nil {
		if t, ok := p.tools.get(req.Params.Name); ok && len(t.OutputSchema) > 0 {
			res.StructuredContent = nil
		}
	}
	return res, nil
}

func (p *pipeline) outcome(ctx context.Context, req *mcp.CallToolRequest) *mcp.CallToolResult {
	start := p.now()
	ctx = p.pin(ctx) // the whole call decides under one policy snapshot
	ci := p.infoOf(ctx, req)
	rec := audit.Record{
		DecisionID: ci.decisionID,
		SessionID:  ci.sessionID,
		RequestID:  ci.requestID,
		Tool:       ci.name,
		Client:     &audit.Client{Name: ci.client.Name, Version: ci.client.Version},
		// Every record of the call names the policy it was decided under,
		// even one written after a reload.
		Revision: p.revisionFor(ctx),
	}
	// finish records a decision. A refusal the client can repeat for free
	// (budgeted) is recorded within its budget and counted past it.
	finish := func(kind, result string, reasons []string, input any, budgeted *budgetKey) error {
		rec.Kind, rec.Result, rec.Reasons, rec.Input = kind, result, reasons, input
		if budgeted != nil {
			ok, summary := p.budget.admit(*budgeted, strings.Join(reasons, "; "))
			if summary != nil {
				summary.SessionID = ci.sessionID
				if err := p.audit.Log(ctx, *summary); err != nil {
					p.log.Error("audit write failed; failing the call", "decision_id", summary.DecisionID, "err", err)
					return err
				}
			}
			if !ok {
				p.countUnrecorded(rec) // in the summary's count, and in input.session's
				return nil
			}
		}
		// Stamped now, as if written now: replay takes the call's arrival
		// from the timestamp less the duration.
		now := p.now()
		rec.Timestamp, rec.DurationNS = now, now.Sub(start).Nanoseconds()
		if err := p.audit.Log(ctx, rec); err != nil {
			p.log.Error("audit write failed; failing the call", "tool", ci.name, "decision_id", ci.decisionID, "err", err)
			return err
		}
		return nil
	}
	auditFailed := auditFailedResult

	// 1. Look the tool up. An unknown tool still goes to the policy, so user
	// rules see it, but it is denied regardless of their answer.
	t, ok := p.tools.get(ci.name)
	if ok && !t.Local {
		// A tool with effects: its records are written before it runs,
		// never kept back with others' (audit.Stage).
		ctx = audit.Unstaged(ctx)
	}

	// 2. Validate the arguments against the tool's schema.
	// Keys that repeat up to case are refused first: the policy and the
	// handler must see the same arguments.
	_, vspan := p.obs.start(ctx, "validate_arguments")
	args, verr := decodeArguments(ci.args)
	if ok && verr == nil {
		verr = checkKeys(ci.args)
	}
	if ok && verr == nil {
		verr = t.schema.Validate(args)
	}
	p.obs.endValidation(vspan, verr)
	if ok && verr != nil {
		v := violationOf(verr)
		msg := fmt.Sprintf("invalid arguments for %q at %q: %s (keyword %q)", ci.name, displayPointer(v.Pointer), v.Message, v.Keyword)
		if finish(audit.KindValidation, audit.ResultDeny, []string{msg}, p.auditInput(ci, args), &budgetKey{kind: audit.KindValidation, tool: ci.name}) != nil {
			return auditFailed()
		}
		res := errorResult(msg)
		res.StructuredContent = map[string]any{"error": "invalid_arguments", "violation": v}
		return res
	}
	if !ok {
		args = nil
	}

	// 3. Rate limit, per tool. Unknown names never reach the limiter.
	if ok {
		if allowed, retry := p.limit.Allow(ci.name); !allowed {
			p.obs.rejected(ctx, ci.name)
			msg := fmt.Sprintf("rate limit for %q exceeded; retry in %s", ci.name, retry.Round(time.Millisecond))
			if finish(audit.KindRateLimit, audit.ResultDeny, []string{msg}, p.auditInput(ci, args), &budgetKey{kind: audit.KindRateLimit, tool: ci.name}) != nil {
				return auditFailed()
			}
			return errorResult(msg)
		}
	}

	// 4. Ask the policy.
	rec.Path = engine.Tools.Path()
	// Its span holds the decision's record (finish uses ctx).
	reqCtx := ctx
	ctx, dspan := p.obs.start(ctx, "decide "+audit.KindToolCall)
	defer dspan.End()
	input, err := toolInput(ci, ok, args, definitionOf(t))
	var d engine.Decision
	if err == nil {
		// An unknown tool is denied whatever the policy says: only its
		// reasons are asked.
		d, err = p.decideTool(ctx, input, !ok)
		if d.Revision != nil {
			rec.Revision = d.Revision
		}
	}
	if err != nil {
		p.log.Error("policy decision failed; denying", "tool", ci.name, "err", err)
		if finish(audit.KindToolCall, audit.ResultError, []string{"policy evaluation failed"}, p.auditInput(ci, args), nil) != nil {
			return auditFailed()
		}
		return errorResult(fmt.Sprintf("call to %q denied: the policy could not be evaluated", ci.name))
	}
	if p.dryActive() {
		if ci.noHistory {
			// A reload brought a dry-run policy during the call: it
			// decides on the whole input, history included.
			ci.history, ci.noHistory = p.sessionHistory(ci.sessionID), false
			input.Session = ci.history
		}
		rec.DryRun = p.dryRun(ctx, input.Value())
	}
	// unavailable: the policy allows the name, but its tool is not
	// offered yet (an upstream that has not come up): the client is told
	// to come back, not that the policy refuses.
	unavailable := ""
	if !ok {
		// An unknown tool's decision gives only the policy's reasons
		// (RefuseTool): the policy has nothing against it when its one
		// reason is that the tool is not registered.
		notRegistered := fmt.Sprintf("tool %q is not registered", ci.name)
		policyAllows := !slices.ContainsFunc(d.Reasons, func(r string) bool { return r != notRegistered })
		d.Allow = false
		if len(d.Reasons) == 0 {
			d.Reasons = []string{notRegistered}
		}
		if why := p.pendingReason(ci.name); why != "" {
			d.Reasons = append(slices.Clone(d.Reasons), why)
			if policyAllows {
				unavailable = why
			}
		}
	}
	if !d.Allow {
		var budgeted *budgetKey
		if !ok {
			budgeted = &unknownToolKey
		}
		if finish(audit.KindToolCall, audit.ResultDeny, d.Reasons, p.auditInput(ci, args), budgeted) != nil {
			return auditFailed()
		}
		if unavailable != "" {
			res := errorResult(fmt.Sprintf("tool %q is not available yet: %s", ci.name, unavailable))
			res.StructuredContent = map[string]any{"error": "unavailable", "kind": "tool", "target": ci.name, "reasons": d.Reasons}
			return res
		}
		res := errorResult(fmt.Sprintf("call to %q denied by policy: %s", ci.name, strings.Join(d.Reasons, "; ")))
		res.StructuredContent = map[string]any{"error": "denied_by_policy", "kind": "tool", "target": ci.name, "reasons": d.Reasons}
		return res
	}
	// The allow is recorded before the handler runs: no effect without a
	// record. A Local tool has no effect but its answer, so its allow is
	// written with its result record, in one batch, before the answer.
	together := t.Local
	if together {
		rec.Kind, rec.Result, rec.Input = audit.KindToolCall, audit.ResultAllow, p.auditInput(ci, args)
		// Stamped now, as if written now: replay takes the call's arrival
		// from the timestamp less the duration.
		now := p.now()
		rec.Timestamp, rec.DurationNS = now, now.Sub(start).Nanoseconds()
	} else if finish(audit.KindToolCall, audit.ResultAllow, nil, p.auditInput(ci, args), nil) != nil {
		return auditFailed()
	}
	dspan.End()
	ctx = reqCtx
	// How the call ended is recorded too, linked by its decision id.
	res, status := p.runChecked(ctx, t, ci, args)
	r := audit.Record{
		DecisionID: ci.decisionID,
		SessionID:  ci.sessionID,
		RequestID:  ci.requestID,
		Path:       rec.Path,
		Kind:       audit.KindToolResult,
		Tool:       ci.name,
		Client:     rec.Client,
		Result:     audit.ResultAllow,
		Status:     status,
		DurationNS: p.now().Sub(start).Nanoseconds(),
		Revision:   rec.Revision,
	}
	if together {
		pair := recordPairs.Get().(*[2]audit.Record)
		pair[0], pair[1] = rec, r
		err := logBatch(ctx, p.audit, pair[:])
		*pair = [2]audit.Record{} // no auditor keeps the slice it is given
		recordPairs.Put(pair)
		if err != nil {
			p.log.Error("audit write failed; failing the call", "tool", ci.name, "decision_id", ci.decisionID, "err", err)
			return auditFailed()
		}
		return res
	}
	if err := p.audit.Log(ctx, r); err != nil {
		// The effect has happened; the client still learns how it ended.
		p.log.Error("audit write failed for a finished call", "tool", ci.name, "decision_id", ci.decisionID, "err", err)
	}
	return res
}

// auditFailedResult is the answer to a call whose audit record could not
// be written.
func auditFailedResult() *mcp.CallToolResult {
	return errorResult("the call was refused because its audit record could not be written")
}

// runChecked decides the schema-annotated arguments, then runs the
// handler; it returns the result and the status of the tool_result record.
func (p *pipeline) runChecked(ctx context.Context, t *registeredTool, ci callInfo, args any) (*mcp.CallToolResult, string) {
	// 5. Decide the arguments the schema marks as paths, URLs or commands,
	// so no handler can forget to; the guards check again at use.
	if t.annotated {
		gctx := guard.WithCall(ctx, ci.guardCall())
		if err := p.checkAnnotations(gctx, collectAnnotations(t.schemaDoc, args)); err != nil {
			var de *plugin.DeniedError
			if errors.As(err, &de) {
				res := deniedResult(ci.name, de)
				res.Content = []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("call to %q denied: %s", ci.name, de.Error())}}
				return res, audit.StatusDenied
			}
			p.log.Error("argument check failed", "tool", ci.name, "err", err)
			return errorResult(fmt.Sprintf("call to %q denied: its arguments could not be checked", ci.name)), audit.StatusDenied
		}
	}

	// 6. Run the handler under the policy's deadline.
	ctx, span := p.obs.startTool(ctx, ci.name)
	res, status := p.run(ctx, t, ci)
	p.obs.endTool(span, status)
	return res, status
}

func (p *pipeline) run(ctx context.Context, t *registeredTool, ci callInfo) (*mcp.CallToolResult, string) {
	// A Local tool answers from the server's memory, on this goroutine,
	// and returns before anything could wait on its deadline: it runs
	// without the timer (which costs more than its work).
	if !t.Local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
		// A shutdown cancels the call: its handler's processes are killed.
		defer context.AfterFunc(p.stopped, cancel)()
	}
	// The guards decide and audit on behalf of this call.
	ctx = guard.WithCall(ctx, ci.guardCall())
	call := &plugin.Call{
		Tool:            ci.name,
		Arguments:       ci.args,
		RequestID:       ci.requestID,
		DecisionID:      ci.decisionID,
		Client:          ci.client,
		ProtocolVersion: ci.protocol,
		Progress:        ci.progress,
		Session:         ci.session,
	}
	if len(call.Arguments) == 0 || string(call.Arguments) == "null" {
		call.Arguments = json.RawMessage("{}")
	}
	type outcome struct {
		res *plugin.Result
		err error
	}
	if t.Local || t.Bounded {
		res, err := callHere(ctx, t, call)
		return p.ended(ctx, ci, res, err)
	}
	done := make(chan outcome, 1) // buffered: a late handler must not block
	handle := func() {
		defer func() {
			if r := recover(); r != nil {
				done <- outcome{err: fmt.Errorf("handler panicked: %v", r)}
			}
		}()
		res, err := t.Handler(ctx, call)
		done <- outcome{res, err}
	}
	handlers.Go(handle)
	select {
	case o := <-done:
		return p.ended(ctx, ci, o.res, o.err)
	case <-ctx.Done():
		p.log.Warn("tool call ended before its handler", "tool", ci.name, "decision_id", ci.decisionID, "err", ctx.Err())
		if errors.Is(ctx.Err(), context.Canceled) {
			return errorResult(fmt.Sprintf("tool %q was cancelled", ci.name)), audit.StatusCancelled
		}
		return timeoutResult(ci.name, p.timeout), audit.StatusTimeout
	}
}

// callHere runs a Local or Bounded tool's handler on this goroutine; a
// panic is its error.
func callHere(ctx context.Context, t *registeredTool, call *plugin.Call) (res *plugin.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return t.Handler(ctx, call)
}

// ended is the result of a handler that returned res, err, and the
// status of its tool_result record.
func (p *pipeline) ended(ctx context.Context, ci callInfo, r *plugin.Result, err error) (*mcp.CallToolResult, string) {
	if err != nil {
		var de *plugin.DeniedError
		if errors.As(err, &de) {
			return deniedResult(ci.name, de), audit.StatusDenied
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return timeoutResult(ci.name, p.timeout), audit.StatusTimeout
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return errorResult(fmt.Sprintf("tool %q was cancelled", ci.name)), audit.StatusCancelled
		}
		p.log.Error("tool failed", "tool", ci.name, "decision_id", ci.decisionID, "err", err)
		return errorResult(fmt.Sprintf("tool %q failed", ci.name)), audit.StatusToolError
	}
	res := toMCP(r)
	if res.IsError {
		return res, audit.StatusToolError
	}
	return res, audit.StatusOK
}

// deniedResult tells the model what a guard refused while the tool ran:
// the kind of access, its target and the policy's reasons.
func deniedResult(tool string, de *plugin.DeniedError) *mcp.CallToolResult {
	res := errorResult(fmt.Sprintf("tool %q was stopped: %s", tool, de.Error()))
	res.StructuredContent = map[string]any{
		"error":   "denied_by_policy",
		"kind":    de.Kind,
		"target":  de.Target,
		"reasons": de.Reasons,
	}
	return res
}

func timeoutResult(tool string, d time.Duration) *mcp.CallToolResult {
	return errorResult(fmt.Sprintf("tool %q timed out after %s (tools.timeout)", tool, d))
}

func toMCP(r *plugin.Result) *mcp.CallToolResult {
	if r == nil {
		return &mcp.CallToolResult{Content: []mcp.Content{}}
	}
	res := &mcp.CallToolResult{IsError: r.IsError, Content: []mcp.Content{&mcp.TextContent{Text: r.Text}}}
	if r.Structured != nil {
		res.StructuredContent = r.Structured
	}
	return res
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

func displayPointer(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// permitted reports whether the policy lets the caller use tool at all:
// the tools decision with empty arguments. Answers are memoised per
// policy snapshot, caller and the state of the tool's pinned definition
// (asked each time), since tools/list, search_tools and list_categories
// ask for every tool on every request.
func (p *pipeline) permitted(ctx context.Context, id identity, tool string) (bool, []string) {
	t, registered := p.tools.get(tool)
	if !registered {
		return false, []string{fmt.Sprintf("tool %q is not registered", tool)}
	}
	// A pinned definition can change between calls: its state, asked
	// of the plugin each time, is part of the key.
	def := definitionOf(t)
	key := permitKey{client: id.client, protocol: id.protocol, tool: t.Name, def: def}
	ctx = p.pin(ctx)
	gen := p.generationFor(ctx)
	if gen != p.generation() {
		gen = 0 // a call pinned to a replaced snapshot: not memoised
	}
	if d, ok := p.permits.get(gen, key); ok {
		return d.Allow, d.Reasons
	}
	input, err := toolInput(callInfo{name: tool, client: id.client, protocol: id.protocol}, true, map[string]any{}, def)
	if err != nil {
		p.permitFailures.Add(1)
		return false, []string{"policy input could not be built"}
	}
	d, err := p.decideTool(ctx, input, false)
	if err != nil {
		p.permitFailures.Add(1)
		return false, []string{"policy evaluation failed"}
	}
	p.permits.put(gen, key, d)
	return d.Allow, d.Reasons
}

// generation is the policy snapshot in force, when the decider tells;
// 0 means it does not, and nothing is memoised.
func (p *pipeline) generation() uint64 {
	if g, ok := p.decide.(interface{ StableGeneration(engine.Point) uint64 }); ok {
		// 0 when tool decisions may change with the clock: then
		// nothing is memoised.
		return g.StableGeneration(engine.Tools)
	}
	if g, ok := p.decide.(interface{ Generation() uint64 }); ok {
		return g.Generation()
	}
	return 0
}

type permitKey struct {
	client   plugin.Client
	protocol string
	tool     string
	def      engine.ToolDefinition // input.tool_definition
}

// permitMemo keeps the decisions of one snapshot; a new snapshot, or too
// many callers, starts it afresh.
type permitMemo struct {
	mu  sync.Mutex
	gen uint64
	m   map[permitKey]engine.Decision
}

const permitMemoLimit = 4096

func (m *permitMemo) get(gen uint64, k permitKey) (engine.Decision, bool) {
	if gen == 0 {
		return engine.Decision{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return engine.Decision{}, false
	}
	d, ok := m.m[k]
	return d, ok
}

func (m *permitMemo) put(gen uint64, k permitKey, d engine.Decision) {
	if gen == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen || m.m == nil || len(m.m) >= permitMemoLimit {
		m.gen, m.m = gen, map[permitKey]engine.Decision{}
	}
	m.m[k] = d
}

// errShutdown is the cause of calls cancelled by a shutdown.
var errShutdown = errors.New("the server is shutting down")

// decodeArguments parses the raw arguments the way the schema validator
// expects (numbers stay json.Number). Absent arguments are an empty object.
func decodeArguments(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" || emptyObject(raw) {
		return map[string]any{}, nil
	}
	v, err := jsonschema.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("arguments are not JSON: %w", err)
	}
	return v, nil
}

// auditInput is the input recorded with a decision; the arguments are left
// out when the policy's audit.include does not name them.
func (p *pipeline) auditInput(ci callInfo, args any) map[string]any {
	in := map[string]any{"tool": ci.name}
	if args != nil && !p.omitArgs {
		in["arguments"] = args
	}
	if ci.protocol != "" {
		in["protocol_version"] = ci.protocol
	}
	return in
}

// toolInput is the input of data.mcp.tools.
func toolInput(ci callInfo, registered bool, args any, def engine.ToolDefinition) (engine.ToolInput, error) {
	in := engine.ToolInput{Tool: ci.name, Registered: registered, Client: engine.Client{Name: ci.client.Name, Version: ci.client.Version},
		ProtocolVersion: ci.protocol, RequestID: ci.requestID, Session: ci.history, Definition: def}
	if m, ok := args.(map[string]any); ok && len(m) == 0 {
		return in, nil // no arguments: the document has the empty object
	}
	if args != nil {
		v, err := ast.InterfaceToValue(args)
		if err != nil {
			return in, fmt.Errorf("arguments: %w", err)
		}
		in.Arguments = v
	}
	return in, nil
}
