package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// fakeDecider allows every registered tool except those in deny, and
// records the inputs it saw.
type fakeDecider struct {
	mu     sync.Mutex
	deny   map[string]string
	err    error
	inputs []ast.Value
}

func (f *fakeDecider) Decide(_ context.Context, p engine.Point, in ast.Value) (engine.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, in)
	if f.err != nil {
		return engine.Decision{Reasons: []string{"policy evaluation failed"}}, f.err
	}
	obj := in.(ast.Object)
	tool := string(obj.Get(ast.StringTerm("tool")).Value.(ast.String))
	if r, ok := f.deny[tool]; ok {
		return engine.Decision{Reasons: []string{r}}, nil
	}
	if obj.Get(ast.StringTerm("registered")).Value.Compare(ast.Boolean(true)) != 0 {
		return engine.Decision{Reasons: []string{"tool is not registered"}}, nil
	}
	return engine.Decision{Allow: true}, nil
}

func (f *fakeDecider) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inputs)
}

type fakeLimiter struct {
	mu    sync.Mutex
	seen  []string
	limit map[string]int
}

func (f *fakeLimiter) Allow(tool string) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, tool)
	if n, ok := f.limit[tool]; ok {
		if n == 0 {
			return false, 1500 * time.Millisecond
		}
		f.limit[tool] = n - 1
	}
	return true, 0
}

type fakeAuditor struct {
	mu   sync.Mutex
	recs []audit.Record
	fail bool
}

func (f *fakeAuditor) Log(_ context.Context, r audit.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("disk full")
	}
	f.recs = append(f.recs, r)
	return nil
}

func (f *fakeAuditor) all() []audit.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]audit.Record(nil), f.recs...)
}

func (f *fakeAuditor) last() audit.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.recs) == 0 {
		return audit.Record{}
	}
	return f.recs[len(f.recs)-1]
}

// gates hold the "stuck" tool until a test releases it; the tool ignores
// its context on purpose.
var gates sync.Map // name -> chan struct{}

func gate(name string) chan struct{} {
	ch, _ := gates.LoadOrStore(name, make(chan struct{}))
	return ch.(chan struct{})
}

// gateRuns numbers newGate's gates.
var gateRuns atomic.Uint64

// newGate names a gate of its own for this run of t, and returns the
// function that releases it (also called at cleanup; a second call does
// nothing). A released gate stays released: a handler that comes to it
// late passes. Its name is new on each run, so that a test run again
// (-count) does not find the gate its earlier run released.
func newGate(t *testing.T) (name string, release func()) {
	name = fmt.Sprintf("%s#%d", t.Name(), gateRuns.Add(1))
	var once sync.Once
	release = func() { once.Do(func() { close(gate(name)) }) }
	t.Cleanup(release)
	return name, release
}

const echoSchema = `{"type":"object","properties":{"msg":{"type":"string","maxLength":10},"n":{"type":"integer","minimum":1}},"required":["msg"],"additionalProperties":false}`

func init() {
	plugin.Register("pipeline-test", func(plugin.Host) (plugin.Plugin, error) { return testPlugin{}, nil })
}

type testPlugin struct{}

func (testPlugin) Info() plugin.Info { return plugin.Info{Name: "pipeline-test", Version: "0.0.1"} }

func (testPlugin) Tools() []plugin.Tool {
	obj := json.RawMessage(`{"type":"object"}`)
	return []plugin.Tool{
		{Name: "echo", Description: "echoes msg", InputSchema: json.RawMessage(echoSchema),
			Handler: func(_ context.Context, c *plugin.Call) (*plugin.Result, error) {
				var a struct{ Msg string }
				json.Unmarshal(c.Arguments, &a)
				return &plugin.Result{Text: a.Msg, Structured: map[string]any{"msg": a.Msg, "request_id": c.RequestID}}, nil
			}},
		{Name: "stuck", InputSchema: obj, Handler: func(_ context.Context, c *plugin.Call) (*plugin.Result, error) {
			var a struct{ Gate string }
			json.Unmarshal(c.Arguments, &a)
			<-gate(a.Gate)
			return &plugin.Result{Text: "late"}, nil
		}},
		{Name: "panics", InputSchema: obj, Handler: func(context.Context, *plugin.Call) (*plugin.Result, error) {
			panic("boom")
		}},
		{Name: "fails", InputSchema: obj, Handler: func(context.Context, *plugin.Call) (*plugin.Result, error) {
			return nil, errors.New("secret internal detail /var/lib/x")
		}},
		// bounded reports whether it runs on the pipeline's goroutine and
		// whether its context has the deadline; with {"wait": true} it
		// waits for its context to end, as a Bounded handler does.
		{Name: "bounded", Bounded: true, InputSchema: obj, Handler: where},
		{Name: "unbounded", InputSchema: obj, Handler: where},
		{Name: "bounded_panics", Bounded: true, InputSchema: obj, Handler: func(context.Context, *plugin.Call) (*plugin.Result, error) {
			panic("boom")
		}},
		// counted has an effect a test can see: it counts its runs.
		{Name: "counted", InputSchema: obj, Handler: func(context.Context, *plugin.Call) (*plugin.Result, error) {
			countedRuns.Add(1)
			return &plugin.Result{Text: "counted"}, nil
		}},
	}
}

// countedRuns counts the runs of the "counted" tool.
var countedRuns atomic.Int64

// where is the handler of "bounded" and "unbounded": it reports whether
// it runs on the pipeline's goroutine and whether its context has a
// deadline; with {"wait": true} it waits for its context to end.
func where(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
	var a struct{ Wait bool }
	json.Unmarshal(c.Arguments, &a)
	if a.Wait {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	stack := make([]byte, 64<<10)
	stack = stack[:runtime.Stack(stack, false)]
	_, deadline := ctx.Deadline()
	return &plugin.Result{Text: "ran", Structured: map[string]any{
		"on_the_call": bytes.Contains(stack, []byte("server.(*pipeline).run(")),
		"deadline":    deadline,
	}}, nil
}

type harness struct {
	dec *fakeDecider
	lim *fakeLimiter
	aud *fakeAuditor
	cs  *mcp.ClientSession
}

func newHarness(t *testing.T, timeout time.Duration) *harness {
	t.Helper()
	return newHarnessAudit(t, timeout, nil)
}

// newHarnessAudit is newHarness with the server's Auditor wrapping the
// harness's (History, say); wrap nil means none.
func newHarnessAudit(t *testing.T, timeout time.Duration, wrap func(Auditor) Auditor) *harness {
	t.Helper()
	h := &harness{
		dec: &fakeDecider{deny: map[string]string{}},
		lim: &fakeLimiter{limit: map[string]int{}},
		aud: &fakeAuditor{},
	}
	var a Auditor = h.aud
	if wrap != nil {
		a = wrap(a)
	}
	s, err := New(Options{Engine: h.dec, Limiter: h.lim, Audit: a, Timeout: timeout, Plugins: []string{"pipeline-test"}})
	if err != nil {
		t.Fatal(err)
	}
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	client := mcp.NewClient(&mcp.Implementation{Name: "unit", Version: "9"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.IOTransport{Reader: cIn, Writer: cOut}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	h.cs = cs
	t.Cleanup(func() { cs.Close(); cancel(); cOut.Close(); <-done })
	return h
}

func (h *harness) call(t *testing.T, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func resultText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestPipelineAllow(t *testing.T) {
	h := newHarness(t, 5*time.Second)
	res := h.call(t, "echo", map[string]any{"msg": "hi"})
	if res.IsError || resultText(res) != "hi" {
		t.Fatalf("got %v %q", res.IsError, resultText(res))
	}
	sc, _ := res.StructuredContent.(map[string]any)
	if sc["request_id"] == "" || sc["request_id"] == nil {
		t.Errorf("handler did not get the JSON-RPC request id: %v", sc)
	}
	recs := h.aud.all()
	if len(recs) != 2 {
		t.Fatalf("records = %+v, want the allow and the result", recs)
	}
	rec, result := recs[0], recs[1]
	if rec.Kind != audit.KindToolCall || rec.Result != audit.ResultAllow || rec.Tool != "echo" || rec.DecisionID == "" || rec.RequestID == "" || rec.SessionID == "" {
		t.Errorf("allow record = %+v", rec)
	}
	if rec.Client == nil || rec.Client.Name != "unit" {
		t.Errorf("client = %+v", rec.Client)
	}
	if result.Kind != audit.KindToolResult || result.Status != audit.StatusOK || result.DecisionID != rec.DecisionID || result.SessionID != rec.SessionID {
		t.Errorf("result record = %+v", result)
	}
	if h.dec.calls() != 1 {
		t.Errorf("decisions = %d, want 1", h.dec.calls())
	}
}

func TestPipelineOrder(t *testing.T) {
	for name, tc := range map[string]struct {
		tool       string
		args       any
		setup      func(h *harness)
		wantText   string
		wantKind   string
		wantResult string
		decisions  int
		limited    int
	}{
		"deny/unknown-tool": {
			tool: "nope", args: map[string]any{}, wantText: "not registered",
			wantKind: audit.KindToolCall, wantResult: audit.ResultDeny, decisions: 1, limited: 0,
		},
		"deny/schema-type": {
			tool: "echo", args: map[string]any{"msg": 5}, wantText: `at "/msg"`,
			wantKind: audit.KindValidation, wantResult: audit.ResultDeny, decisions: 0, limited: 0,
		},
		"deny/schema-required": {
			tool: "echo", args: map[string]any{}, wantText: `keyword "required"`,
			wantKind: audit.KindValidation, wantResult: audit.ResultDeny,
		},
		"deny/schema-additional": {
			tool: "echo", args: map[string]any{"msg": "a", "extra": 1}, wantText: `additionalProperties`,
			wantKind: audit.KindValidation, wantResult: audit.ResultDeny,
		},
		"deny/rate-limit": {
			tool: "echo", args: map[string]any{"msg": "a"}, setup: func(h *harness) { h.lim.limit["echo"] = 0 },
			wantText: "rate limit", wantKind: audit.KindRateLimit, wantResult: audit.ResultDeny, limited: 1,
		},
		"deny/policy": {
			tool: "echo", args: map[string]any{"msg": "a"}, setup: func(h *harness) { h.dec.deny["echo"] = "echo is off on weekends" },
			wantText: "echo is off on weekends", wantKind: audit.KindToolCall, wantResult: audit.ResultDeny, decisions: 1, limited: 1,
		},
		"deny/policy-error": {
			tool: "echo", args: map[string]any{"msg": "a"}, setup: func(h *harness) { h.dec.err = engine.ErrEval },
			wantText: "could not be evaluated", wantKind: audit.KindToolCall, wantResult: audit.ResultError, decisions: 1, limited: 1,
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, 5*time.Second)
			if tc.setup != nil {
				tc.setup(h)
			}
			res := h.call(t, tc.tool, tc.args)
			if !res.IsError || !strings.Contains(resultText(res), tc.wantText) {
				t.Errorf("result isError=%v %q, want %q", res.IsError, resultText(res), tc.wantText)
			}
			rec := h.aud.last()
			if rec.Kind != tc.wantKind || rec.Result != tc.wantResult || len(rec.Reasons) == 0 {
				t.Errorf("record = %+v", rec)
			}
			if got := h.dec.calls(); got != tc.decisions {
				t.Errorf("decisions = %d, want %d", got, tc.decisions)
			}
			if got := len(h.lim.seen); got != tc.limited {
				t.Errorf("limiter saw %d calls, want %d (%v)", got, tc.limited, h.lim.seen)
			}
		})
	}
}

func TestPipelineHandlerFailures(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond)
	g, _ := newGate(t)
	res := h.call(t, "stuck", map[string]any{"gate": g})
	if !res.IsError || !strings.Contains(resultText(res), "timed out") {
		t.Errorf("stuck: %v %q", res.IsError, resultText(res))
	}
	res = h.call(t, "panics", map[string]any{})
	if !res.IsError || !strings.Contains(resultText(res), "failed") {
		t.Errorf("panics: %v %q", res.IsError, resultText(res))
	}
	res = h.call(t, "fails", map[string]any{})
	if !res.IsError || strings.Contains(resultText(res), "/var/lib") {
		t.Errorf("fails leaked detail or succeeded: %v %q", res.IsError, resultText(res))
	}
	// The server is still serving.
	if res := h.call(t, "echo", map[string]any{"msg": "alive"}); res.IsError {
		t.Errorf("after failures: %q", resultText(res))
	}
}

// TestPipelineBoundedHandler: a Bounded tool's handler runs on the
// call's own goroutine, under the policy's deadline; at the deadline the
// call times out, and a panic is a failure the server survives, as with
// a handler run on a goroutine of its own.
func TestPipelineBoundedHandler(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond)
	res := h.call(t, "bounded", map[string]any{})
	sc, _ := res.StructuredContent.(map[string]any)
	if res.IsError || sc["on_the_call"] != true || sc["deadline"] != true {
		t.Errorf("bounded: %v %q %v, want run on the call's goroutine with the deadline", res.IsError, resultText(res), sc)
	}
	// The same handler, not Bounded, runs on a goroutine of its own.
	res = h.call(t, "unbounded", map[string]any{})
	if sc, _ := res.StructuredContent.(map[string]any); res.IsError || sc["on_the_call"] != false || sc["deadline"] != true {
		t.Errorf("unbounded: %v %q %v, want run on a goroutine of its own with the deadline", res.IsError, resultText(res), sc)
	}
	res = h.call(t, "bounded", map[string]any{"wait": true})
	if !res.IsError || !strings.Contains(resultText(res), "timed out") {
		t.Errorf("bounded at its deadline: %v %q", res.IsError, resultText(res))
	}
	if rec := h.aud.last(); rec.Kind != audit.KindToolResult || rec.Status != audit.StatusTimeout {
		t.Errorf("record = %+v, want a tool_result of status timeout", rec)
	}
	res = h.call(t, "bounded_panics", map[string]any{})
	if !res.IsError || !strings.Contains(resultText(res), "failed") {
		t.Errorf("bounded_panics: %v %q", res.IsError, resultText(res))
	}
	if res := h.call(t, "echo", map[string]any{"msg": "alive"}); res.IsError {
		t.Errorf("after a panic: %q", resultText(res))
	}
}

func TestPipelineAuditFailureFailsClosed(t *testing.T) {
	h := newHarness(t, time.Second)
	// With the audit log working, the tool runs: its count is what shows
	// whether it ran below.
	before := countedRuns.Load()
	if res := h.call(t, "counted", map[string]any{}); res.IsError || countedRuns.Load() != before+1 {
		t.Fatalf("counted with a working audit log: %v %q, %d runs", res.IsError, resultText(res), countedRuns.Load()-before)
	}
	h.aud.fail = true
	before = countedRuns.Load()
	res := h.call(t, "counted", map[string]any{})
	if runs := countedRuns.Load() - before; runs != 0 {
		t.Fatalf("the tool ran %d times without its allow record", runs)
	}
	if want := resultText(auditFailedResult()); !res.IsError || resultText(res) != want {
		t.Errorf("result %v %q, want %q", res.IsError, resultText(res), want)
	}
	if n := h.dec.calls(); n != 2 {
		t.Errorf("the policy was asked %d times, want 2 (the call was decided, then refused for its record)", n)
	}
}

func TestPipelineSlowToolDoesNotBlockOthers(t *testing.T) {
	h := newHarness(t, 10*time.Second)
	g, release := newGate(t)
	slow := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, _ := h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "stuck", Arguments: map[string]any{"gate": g}})
		slow <- res
	}()
	for range 5 {
		if res := h.call(t, "echo", map[string]any{"msg": "fast"}); res.IsError {
			t.Fatalf("fast call failed: %q", resultText(res))
		}
	}
	select {
	case <-slow:
		t.Fatal("the stuck tool finished before it was released")
	default:
	}
	release()
	if res := <-slow; res == nil || res.IsError {
		t.Errorf("released tool: %+v", res)
	}
}

type closingPlugin struct {
	testPlugin
	closed *[]string
	name   string
}

func (closingPlugin) Tools() []plugin.Tool { return nil }

func (c closingPlugin) Close() error { *c.closed = append(*c.closed, c.name); return nil }

// Plugins that hold resources are closed once, last built first.
func TestServerClosesPlugins(t *testing.T) {
	var closed []string
	for _, name := range []string{"close-a", "close-b"} {
		plugin.Register(name, func(plugin.Host) (plugin.Plugin, error) {
			return closingPlugin{closed: &closed, name: name}, nil
		})
	}
	s, err := New(Options{Engine: &fakeDecider{}, Limiter: &fakeLimiter{}, Audit: &fakeAuditor{}, Plugins: []string{"close-a", "pipeline-test", "close-b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || strings.Join(closed, ",") != "close-b,close-a" {
		t.Errorf("closed = %v (%v)", closed, err)
	}
}

// extraPlugin is a plugin built outside the registry whose tools collide
// with the registry's and with each other.
type extraPlugin struct{}

func (extraPlugin) Info() plugin.Info { return plugin.Info{Name: "extra", Version: "1"} }

func (extraPlugin) Tools() []plugin.Tool {
	h := func(context.Context, *plugin.Call) (*plugin.Result, error) {
		return &plugin.Result{Text: "extra"}, nil
	}
	obj := json.RawMessage(`{"type":"object"}`)
	return []plugin.Tool{
		{Name: "echo", Description: "takes a served name", InputSchema: obj, Handler: h},
		{Name: "extra_a", Description: "first", InputSchema: obj, Handler: h},
		{Name: "extra_a", Description: "listed twice", InputSchema: obj, Handler: h},
		{Name: "extra_b", Description: "fine", InputSchema: obj, Handler: h},
	}
}

// A plugin from outside the binary cannot take a served name, nor stop
// the server by listing one twice: those tools are left out.
func TestExtraPluginCollisionsLeftOut(t *testing.T) {
	s, err := New(Options{Engine: &fakeDecider{}, Limiter: &fakeLimiter{}, Audit: &fakeAuditor{},
		Plugins: []string{"pipeline-test"}, Extra: []plugin.Plugin{extraPlugin{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.pipe.tools.all()["echo"].Description; got != "echoes msg" {
		t.Errorf("echo is %q, want the registry's tool", got)
	}
	if got := s.pipe.tools.all()["extra_a"].Description; got != "first" {
		t.Errorf("extra_a is %q, want the first listing", got)
	}
	if _, ok := s.pipe.tools.all()["extra_b"]; !ok {
		t.Error("extra_b was left out")
	}
}
