package server

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The fast lane. Through the SDK, a request crosses four goroutines
// before its handler runs (the transport's reader, the SDK's reader, its
// queue and a goroutine per request), and each hand-off costs a wake-up
// that, on a small machine, takes longer than the work. The fast lane
// answers the requests a client sends most, ping, tools/list and
// tools/call, from the transport's reader: ping at once, tools/list with
// the answer it keeps for the catalog view (fastlist.go), a tools/call
// through the same pipeline the SDK would call, run where it was read when nothing else is
// waiting (one request in flight, no more input buffered) and the tool
// only reads the server's own state (plugin.Tool.Local, or an unknown
// tool, which is denied), else on a pooled worker.
//
// It takes only what it answers exactly as the SDK would: ping and
// tools/list of a session that began with initialize; tools/call once
// the SDK has the client's parameters (from initialize, or from the
// _meta of a request of the 2026-07-28 protocol), with params in their
// plain shape (name, arguments, _meta with no protocol keys or those of
// a 2026-07-28 request the SDK accepts, newprotocol.go); with telemetry
// on only tools/call, through the request middleware that makes its span
// and metrics on the SDK's path (observer.middleware). Anything else goes
// to the SDK as before. Every tools/call it
// takes is decided and audited by the pipeline before its answer is
// written, as on the SDK path.

// fastLane holds what the fast lane needs of a server and its session.
type fastLane struct {
	pipe *pipeline
	// session is the stdio session, once its initialize is answered.
	session atomic.Pointer[mcp.ServerSession]
	// calls is the stdio session once the SDK takes calls of it: its
	// initialize is answered, or a request of the 2026-07-28 protocol
	// (server/discover, a call) gave it the client's parameters.
	calls atomic.Pointer[mcp.ServerSession]
	// ctx ends when the transport closes; each call's context derives
	// from it.
	ctx  context.Context
	stop context.CancelFunc

	// syncs says the audit log syncs each batch to disk: calls that wait
	// on a sync are better run side by side, so their records share one.
	syncs bool

	mu      sync.Mutex
	cancels map[string]context.CancelFunc // by idKey, while in flight

	// cpu runs the calls that only take CPU while others wait (cpu.go).
	cpu cpuWorkers

	// lists is the encoded tools/list answer of the last view
	// (fastlist.go).
	lists atomic.Pointer[listAnswer]

	// traced runs a tools/call through the request middleware, with
	// telemetry on; nil with telemetry off.
	traced mcp.MethodHandler
}

func newFastLane(p *pipeline) *fastLane {
	ctx, stop := context.WithCancel(context.Background())
	s, ok := p.audit.(interface{ Syncs() bool })
	f := &fastLane{pipe: p, ctx: ctx, stop: stop, cancels: map[string]context.CancelFunc{},
		syncs: !ok || s.Syncs()}
	f.cpu.init(ctx, 2*runtime.GOMAXPROCS(0))
	if p.obs.enabled() {
		f.traced = p.obs.middleware(p)(func(ctx context.Context, _ string, req mcp.Request) (mcp.Result, error) {
			return p.call(ctx, req.(*mcp.CallToolRequest))
		})
	}
	return f
}

// call runs a tools/call through the pipeline, and with telemetry on
// through the request middleware first.
func (f *fastLane) call(ctx context.Context, ctr *mcp.CallToolRequest) *mcp.CallToolResult {
	if f.traced == nil {
		res, _ := f.pipe.call(ctx, ctr) // never an error
		return res
	}
	res, _ := f.traced(ctx, "tools/call", ctr)
	return res.(*mcp.CallToolResult) // the pipeline's, never an error
}

// fastLaneKey is the context key under which Run hands the fast lane to
// the SDK, so the initialize middleware can find it.
type fastLaneKey struct{}

// readyMiddleware opens the fast lane to a session once a request of it
// is answered: ping and tools/list once its initialize is (from then on
// the SDK takes the session's client info and protocol version from its
// handshake, and so does the pipeline), tools/call once the SDK has the
// client's parameters (openCalls). It runs outside sessions.middleware,
// so the handshake's identity is recorded first.
func readyMiddleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if err != nil {
			return res, err
		}
		ss, _ := req.GetSession().(*mcp.ServerSession)
		openCalls(ctx, ss)
		if method != "initialize" {
			return res, err
		}
		if f, ok := ctx.Value(fastLaneKey{}).(*fastLane); ok && f != nil && ss != nil && ss.InitializeParams() != nil {
			f.session.CompareAndSwap(nil, ss)
		}
		return res, err
	}
}

// openCalls opens the fast lane to the tools/call requests of ss once
// the SDK has the client's parameters (from initialize, or from the
// _meta of a 2026-07-28 request): from then on it runs a call as the
// fast lane does.
func openCalls(ctx context.Context, ss *mcp.ServerSession) {
	f, ok := ctx.Value(fastLaneKey{}).(*fastLane)
	if !ok || f == nil || ss == nil || f.calls.Load() != nil || ss.InitializeParams() == nil {
		return
	}
	f.calls.CompareAndSwap(nil, ss)
}

// take answers req if it is the fast lane's to answer, and reports
// whether it did (or handed it to a worker that will). The request has
// been admitted: its answer is owed. alone says nothing else is waiting:
// it is the only request in flight and no more input is buffered.
//
// A call that only takes CPU (a Local tool, or an unknown one) runs on
// the reader when nothing else waits; when more requests wait, it goes
// to the connection's CPU workers, two per processor, so calls use every
// core while the reader reads on, and their records and answers that
// come ready together go out together; when the workers are behind, the
// reader runs the call itself, which holds the client back. With an audit log that syncs
// every batch, such calls run side by side instead, as many as wait, so
// that their records share one sync.
func (f *fastLane) take(c *stdioConn, req *jsonrpc.Request, alone bool) bool {
	if !req.ID.IsValid() {
		return false
	}
	switch req.Method {
	case "ping":
		// With telemetry on, only tools/call: the others' spans are
		// made on the SDK's path.
		if f.traced != nil || len(req.Params) != 0 && !emptyObject(req.Params) {
			return false
		}
		tookHook(req)
		f.answer(c, req.ID, []byte(`{}`))
		return true
	case "tools/list":
		ss := f.session.Load()
		if f.traced != nil || ss == nil || !alone || !listParams(req.Params) {
			return false
		}
		a, id, ok := f.list(c, ss)
		// A list is large: written on the reader only when the output
		// takes it at once (else the SDK's path writes it, off the
		// reader), so that a client that stops reading cannot keep the
		// reader from the end of the input.
		if !ok || !c.out.roomFor(len(a.result)+64) {
			return false
		}
		tookHook(req)
		// As listFilter does: the session's list, for PolicyChanged.
		f.pipe.sessions.listed(ss, id, a.names)
		f.answer(c, req.ID, a.result)
		return true
	case "tools/call":
		ss := f.calls.Load()
		if ss == nil {
			return false
		}
		params, id, proto, ok := callParams(req.Params)
		if !ok {
			return false
		}
		tookHook(req)
		ctr := &mcp.CallToolRequest{Session: ss, Params: params}
		key := idKey(req.ID)
		ctx, cancel := context.WithCancel(f.ctx)
		f.mu.Lock()
		f.cancels[key] = cancel
		f.mu.Unlock()
		if params.Meta == nil {
			// The transport adds the request id to every call's _meta:
			// none was decoded, as it held only the id (maybe "").
			ctx = context.WithValue(ctx, requestIDKey{}, id)
		}
		if proto {
			ctx = context.WithValue(ctx, quietLogKey{}, true)
		}
		run := func(g *callGroup) {
			callCtx := ctx
			if g != nil && f.traced == nil {
				// With telemetry on, records are written as each call
				// logs them, not staged: the write's error then reaches
				// telemetry.Audit, which counts it and marks the span.
				callCtx = audit.WithStage(ctx, &g.stage)
			}
			res := f.call(callCtx, ctr)
			f.mu.Lock()
			delete(f.cancels, key)
			f.mu.Unlock()
			cancel()
			if g != nil {
				g.add(c, req.ID, res, f.pipe, proto)
				return
			}
			bp := resultBufs.Get().(*[]byte)
			*bp = f.pipe.appendAnswer((*bp)[:0], res, proto)
			f.answer(c, req.ID, *bp) // written (copied out) when it returns
			if cap(*bp) <= 64<<10 {
				resultBufs.Put(bp)
			}
		}
		switch {
		case alone && !f.inline(params.Name):
			// A tool that may wait, and nothing else in flight: the
			// reader, already running, runs the call once it has handed
			// the reading on to a pooled worker (readLoop). The worker
			// only has to reach its next read before the client writes
			// again, whereas a call handed to a worker waits for the
			// scheduler to wake one; this is most of an upstream call's
			// own cost in lockstep.
			c.handoff = func() { run(nil) }
		case !f.inline(params.Name) || f.syncs && !alone:
			// A tool that may wait (on the network, a process), or calls
			// whose records wait on a sync: side by side, as many as are
			// in flight, so none holds up another and records share
			// syncs.
			handlers.Go(func() { run(nil) })
		case alone || !f.cpu.Go(run):
			// Nothing waits (no hand-off), or the workers are behind: the
			// reader runs the call and reads on once it is done.
			run(nil)
		}
		return true
	}
	return false
}

// callGroup is calls a CPU worker ran back to back (cpu.go). Their audit
// records wait in stage and their encoded results in buf until finish
// writes the records, in one batch, and then the answers, in one write:
// none of these calls has an effect before its answer, so holding their
// records back until just before their answers records the same thing.
// Should the records not be written, every call of the group is refused,
// as each would be had its own batch failed.
type callGroup struct {
	stage   audit.Stage
	conn    *stdioConn
	answers []groupAnswer
	buf     []byte
	posts   []answer
	pipe    *pipeline // of the calls' answers
}

// groupAnswer is the answer of one call of a group: its result is
// buf[start:end].
type groupAnswer struct {
	id         jsonrpc.ID
	start, end int
	// proto: the call is of the 2026-07-28 protocol (its answer, a
	// refusal included, is signed with the server's info).
	proto bool
}

// add keeps the answer of a call of the group (proto: of the 2026-07-28
// protocol).
func (g *callGroup) add(c *stdioConn, id jsonrpc.ID, res *mcp.CallToolResult, p *pipeline, proto bool) {
	if g.conn != nil && g.conn != c {
		g.finish(context.Background()) // another connection's calls: not one group
	}
	g.conn, g.pipe = c, p
	start := len(g.buf)
	g.buf = p.appendAnswer(g.buf, res, proto)
	g.answers = append(g.answers, groupAnswer{id: id, start: start, end: len(g.buf), proto: proto})
}

// finish writes the group's records and then its answers, or, when the
// records cannot be written, refuses every call of the group; and
// empties the group.
func (g *callGroup) finish(ctx context.Context) {
	if len(g.answers) == 0 {
		// Nothing to answer: records kept under the group, if any, are
		// still written.
		_ = g.stage.Commit(ctx)
		return
	}
	groupHook(len(g.answers))
	if err := g.stage.Commit(ctx); err != nil {
		// Each record's failure is already on stderr.
		g.buf = g.buf[:0]
		for i := range g.answers {
			a := &g.answers[i]
			a.start = len(g.buf)
			g.buf = g.pipe.appendAnswer(g.buf, auditFailedResult(), a.proto)
			a.end = len(g.buf)
		}
	}
	for _, a := range g.answers {
		g.posts = append(g.posts, answer{id: a.id, result: g.buf[a.start:a.end]})
	}
	g.conn.postAll(g.posts) // written (copied out) when it returns
	clear(g.posts)
	g.posts, g.answers, g.conn = g.posts[:0], g.answers[:0], nil
	g.buf = g.buf[:0]
	if cap(g.buf) > 256<<10 {
		g.buf = nil
	}
}

// groupHook is called with the number of calls of each group finished
// (tests set it).
var groupHook = func(int) {}

// tookHook is called with each request the fast lane takes (tests set
// it to see which).
var tookHook = func(*jsonrpc.Request) {}

// inline reports whether a call of tool may run on the reader: the tool
// only reads the server's own state in memory, or is not served at all
// (the pipeline denies it).
func (f *fastLane) inline(tool string) bool {
	t, ok := f.pipe.tools.get(tool)
	return !ok || t.Local
}

// cancel ends the call of id, if the fast lane runs it: the client
// cancelled it.
func (f *fastLane) cancel(id jsonrpc.ID) {
	f.mu.Lock()
	cancel := f.cancels[idKey(id)]
	f.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// answer writes a result, without waiting for the write if another is
// under way (stdioConn.post). A write error ends nothing here: the
// reader sees the client gone at its next read.
func (f *fastLane) answer(c *stdioConn, id jsonrpc.ID, result []byte) {
	c.post(id, result)
}

// resultBufs are the buffers the fast lane encodes results into.
var resultBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// encodeCallResult is the result as the SDK writes it: an absent content
// list is an empty one, and the result marshals itself.
func encodeCallResult(res *mcp.CallToolResult) []byte {
	return appendCallResultOrError(make([]byte, 0, 512), res)
}

// appendAnswer appends the result of a call as the SDK answers it: for
// a request of the 2026-07-28 protocol (proto), signed and complete.
func (p *pipeline) appendAnswer(dst []byte, res *mcp.CallToolResult, proto bool) []byte {
	if proto {
		return p.appendNewProtocolResult(dst, res)
	}
	return appendCallResultOrError(dst, res)
}

// appendCallResultOrError appends what encodeCallResult returns.
func appendCallResultOrError(dst []byte, res *mcp.CallToolResult) []byte {
	if res == nil {
		res = errorResult("the call produced no result")
	}
	if data, ok := appendCallResult(dst, res); ok {
		return data
	}
	if res.Content == nil {
		r := *res
		r.Content = []mcp.Content{}
		res = &r
	}
	data, err := json.Marshal(res)
	if err != nil {
		data, _ = json.Marshal(errorResult("the result could not be encoded"))
	}
	return append(dst, data...)
}

// emptyObject reports whether b is a JSON object with no members.
func emptyObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0 && b[len(b)-1] == '}'
}

// protocolMeta is the prefix of the _meta keys the protocol itself
// defines (the stateless protocol's version, client info and
// capabilities): a request that has them goes to the SDK, unless
// newProtocolCall takes them.
const protocolMeta = "io.modelcontextprotocol/"

// callParams reads tools/call params of the plain shape: an object with
// "name" (a string without escapes), "arguments" (an object, or absent)
// and "_meta" (an object, or absent), each once, keys without escapes.
// It reports false for anything else, which the SDK decodes. proto
// says the _meta holds the keys of a 2026-07-28 request, in the shape
// newProtocolCall takes. When the _meta holds nothing but the request id
// the transport added, it is returned as id, and params has no _meta.
func callParams(params []byte) (_ *mcp.CallToolParamsRaw, id string, proto, ok bool) {
	mp := memberPool.Get().(*[]member)
	defer putMembers(mp)
	ms, _, ok := members(params, *mp)
	if !ok {
		return nil, "", false, false
	}
	var name, args, meta []byte
	for _, m := range ms {
		if m.escaped {
			return nil, "", false, false
		}
		var slot *[]byte
		switch string(m.key) {
		case "name":
			slot = &name
		case "arguments":
			slot = &args
		case "_meta":
			slot = &meta
		default:
			return nil, "", false, false
		}
		if *slot != nil {
			return nil, "", false, false
		}
		*slot = m.value
	}
	if len(name) < 2 || name[0] != '"' || bytes.IndexByte(name, '\\') >= 0 {
		return nil, "", false, false
	}
	p := &mcp.CallToolParamsRaw{Name: string(name[1 : len(name)-1])}
	if args != nil {
		if args[0] != '{' {
			return nil, "", false, false
		}
		p.Arguments = bytes.Clone(args)
	}
	if meta != nil {
		if meta[0] != '{' {
			return nil, "", false, false
		}
		if id, ok := onlyRequestID(meta); ok {
			return p, id, false, true
		}
		var m mcp.Meta
		if !simpleMeta(meta, &m) {
			if json.Unmarshal(meta, &m) != nil {
				return nil, "", false, false
			}
		}
		p.Meta = m
		for k := range m {
			if strings.HasPrefix(k, protocolMeta) {
				if !newProtocolCall(meta, m, p) {
					return nil, "", false, false
				}
				return p, "", true, true
			}
		}
	}
	return p, "", false, true
}

// onlyRequestID returns the request id of a _meta object that holds
// nothing else, as a plain string.
func onlyRequestID(meta []byte) (string, bool) {
	var buf [maxMembers]member
	ms, _, ok := members(meta, buf[:0])
	if !ok || len(ms) != 1 || ms[0].escaped || string(ms[0].key) != requestIDMeta {
		return "", false
	}
	v := ms[0].value
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}

// simpleMeta reads a _meta object whose members are all strings without
// escapes (the request id the transport adds is one), into m.
func simpleMeta(meta []byte, m *mcp.Meta) bool {
	var buf [maxMembers]member
	ms, _, ok := members(meta, buf[:0])
	if !ok {
		return false
	}
	out := make(mcp.Meta, len(ms))
	for _, mb := range ms {
		v := mb.value
		if mb.escaped || len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
			return false
		}
		k := string(mb.key)
		if _, dup := out[k]; dup {
			return false
		}
		out[k] = string(v[1 : len(v)-1])
	}
	*m = out
	return true
}
