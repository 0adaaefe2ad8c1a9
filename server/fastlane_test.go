package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

func init() {
	plugin.Register("fastlane-test", func(plugin.Host) (plugin.Plugin, error) { return fastLanePlugin{}, nil })
}

// fastLanePlugin has a Local tool: one the fast lane runs on the reader.
type fastLanePlugin struct{}

func (fastLanePlugin) Info() plugin.Info { return plugin.Info{Name: "fastlane-test", Version: "0.0.1"} }

func (fastLanePlugin) Tools() []plugin.Tool {
	return []plugin.Tool{{Name: "local_echo", Local: true, InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(_ context.Context, c *plugin.Call) (*plugin.Result, error) {
			return &plugin.Result{Text: "local <" + string(c.Arguments) + ">", Structured: map[string]any{"request_id": c.RequestID}}, nil
		}}, {Name: "logs", InputSchema: json.RawMessage(`{"type":"object"}`),
		// Sends the client a log message with the call's context.
		Handler: func(ctx context.Context, c *plugin.Call) (*plugin.Result, error) {
			if c.Session == nil {
				return nil, errors.New("no session")
			}
			if err := c.Session.Log(ctx, "warning", "logs", "from the call"); err != nil {
				return nil, err
			}
			return &plugin.Result{Text: "logged"}, nil
		}}}
}

// rawClient speaks JSON-RPC lines to a server run over pipes.
type rawClient struct {
	t     *testing.T
	in    io.WriteCloser
	lines chan string
	aud   *fakeAuditor
	// passed are the lines answer read past (notifications, other
	// answers).
	passed []string
}

func newRawClient(t *testing.T) *rawClient {
	t.Helper()
	c, _ := newRawClientWith(t, Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: &fakeLimiter{limit: map[string]int{}},
		Timeout: 10 * time.Second, Plugins: []string{"pipeline-test", "fastlane-test"}})
	return c
}

// newRawClientWith runs a server of opts (its audit a fakeAuditor) for
// a rawClient.
func newRawClientWith(t *testing.T, opts Options) (*rawClient, *Server) {
	t.Helper()
	aud := &fakeAuditor{}
	opts.Audit = aud
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	// The server writes to a real pipe, as over stdio: the fast lane
	// asks it how much room it has (lineWriter.roomFor).
	cIn, sOut, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sIn, cOut := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, sIn, sOut); sOut.Close(); close(done) }()
	c := &rawClient{t: t, in: cOut, lines: make(chan string, 64), aud: aud}
	go func() {
		sc := bufio.NewScanner(cIn)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		cOut.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return c, s
}

func (c *rawClient) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// answer waits for the answer to id and returns its result or error,
// as written.
func (c *rawClient) answer(id int) string {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("output ended before the answer to %d", id)
			}
			var m struct {
				ID     json.RawMessage `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if json.Unmarshal([]byte(line), &m) != nil || string(m.ID) != fmt.Sprint(id) {
				c.passed = append(c.passed, line) // a notification, or another answer
				continue
			}
			if m.Error != nil {
				return "error " + string(m.Error)
			}
			return string(m.Result)
		case <-timeout:
			c.t.Fatalf("no answer to %d", id)
		}
	}
}

// notification waits for a notification of method, read past by answer
// or still to come, and forgets it.
func (c *rawClient) notification(method string) {
	c.t.Helper()
	is := func(line string) bool {
		var m struct {
			Method string `json:"method"`
		}
		return json.Unmarshal([]byte(line), &m) == nil && m.Method == method
	}
	if i := slices.IndexFunc(c.passed, is); i >= 0 {
		c.passed = slices.Delete(c.passed, i, i+1)
		return
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("output ended before %s", method)
			}
			if is(line) {
				return
			}
			c.passed = append(c.passed, line)
		case <-timeout:
			c.t.Fatalf("no %s", method)
		}
	}
}

func (c *rawClient) initialize() {
	c.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	c.answer(0)
	c.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// TestFastLaneAnswersAsTheSDK: each request the fast lane takes is
// answered byte for byte as the SDK answers the same request in a shape
// the fast lane leaves to it (an extra member), with the same audit
// records.
func TestFastLaneAnswersAsTheSDK(t *testing.T) {
	c := newRawClient(t)
	c.initialize()
	answersAsTheSDK(t, c, map[string]struct{ method, params string }{
		"ping":                 {"ping", ``},
		"allow":                {"tools/call", `"name":"echo","arguments":{"msg":"a<b&c"}`},
		"allow/local":          {"tools/call", `"name":"local_echo","arguments":{"x":[1,2]}`},
		"allow/meta":           {"tools/call", `"name":"echo","arguments":{"msg":"m"},"_meta":{"progressToken":7,"k":"v"}`},
		"deny/unknown-tool":    {"tools/call", `"name":"no_such_tool","arguments":{}`},
		"deny/invalid":         {"tools/call", `"name":"echo","arguments":{"msg":"far too long a message"}`},
		"deny/no-arguments":    {"tools/call", `"name":"echo"`},
		"error/handler-failed": {"tools/call", `"name":"fails","arguments":{}`},
	})
}

// newProtocolMeta is the _meta the Go SDK's client sends with each
// request of the 2026-07-28 protocol, without its closing brace.
const newProtocolMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
	`"io.modelcontextprotocol/clientInfo":{"name":"meta-client","version":"2"},` +
	`"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}}`

// TestFastLaneAnswersNewProtocolAsTheSDK: a tools/call of the 2026-07-28
// protocol (the client's parameters in its _meta) is answered by the
// fast lane byte for byte as the SDK answers it (signed with the
// server's info), both in a session that
// began with server/discover (no initialize) and in one that began with
// initialize.
func TestFastLaneAnswersNewProtocolAsTheSDK(t *testing.T) {
	cases := map[string]struct{ method, params string }{
		"allow":                {"tools/call", `"name":"echo","arguments":{"msg":"a<b&c"},` + newProtocolMeta + `}`},
		"allow/local":          {"tools/call", `"name":"local_echo","arguments":{"x":[1,2]},` + newProtocolMeta + `}`},
		"allow/meta":           {"tools/call", `"name":"echo","arguments":{"msg":"m"},` + newProtocolMeta + `,"progressToken":7,"k":"v"}`},
		"deny/unknown-tool":    {"tools/call", `"name":"no_such_tool","arguments":{},` + newProtocolMeta + `}`},
		"deny/invalid":         {"tools/call", `"name":"echo","arguments":{"msg":"far too long a message"},` + newProtocolMeta + `}`},
		"error/handler-failed": {"tools/call", `"name":"fails","arguments":{},` + newProtocolMeta + `}`},
	}
	t.Run("discover", func(t *testing.T) {
		c := newRawClient(t)
		c.send(`{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{` + newProtocolMeta + `}}}`)
		if got := c.answer(0); strings.HasPrefix(got, "error") {
			t.Fatalf("server/discover answered %s", got)
		}
		answersAsTheSDK(t, c, cases)
		// Calls without the protocol's _meta, in a session that began
		// with server/discover: the SDK takes them as of the client its
		// discover named.
		answersAsTheSDK(t, c, map[string]struct{ method, params string }{
			"plain/allow":        {"tools/call", `"name":"echo","arguments":{"msg":"p"}`},
			"plain/deny-unknown": {"tools/call", `"name":"no_such_tool","arguments":{}`},
		})
		// Without a handshake, each call names its client.
		if recs := c.aud.all(); len(recs) == 0 || recs[len(recs)-1].Client == nil || recs[len(recs)-1].Client.Name != "meta-client" {
			t.Errorf("the calls' records do not name the client of their _meta: %+v", recs[len(recs)-1].Client)
		}
	})
	t.Run("initialize", func(t *testing.T) {
		c := newRawClient(t)
		c.initialize()
		answersAsTheSDK(t, c, cases)
	})
	t.Run("first-request", func(t *testing.T) {
		// No discover and no initialize: the SDK takes the client's
		// parameters from the first call; the fast lane the calls after.
		c := newRawClient(t)
		c.send(`{"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"echo","arguments":{"msg":"x"},` + newProtocolMeta + `}}}`)
		if got := c.answer(0); !strings.Contains(got, `"io.modelcontextprotocol/serverInfo"`) {
			t.Fatalf("first call answered %s", got)
		}
		answersAsTheSDK(t, c, cases)
	})
}

// TestFastLaneNewProtocolLeftToTheSDK: 2026-07-28 calls the SDK refuses,
// or whose log level the fast lane does not carry, are not taken; the
// SDK answers them.
func TestFastLaneNewProtocolLeftToTheSDK(t *testing.T) {
	var took sync.Map
	tookHook = func(r *jsonrpc.Request) { took.Store(fmt.Sprint(r.ID.Raw()), true) }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	c := newRawClient(t)
	c.initialize()
	for i, tc := range []struct{ meta, want string }{
		{`"io.modelcontextprotocol/protocolVersion":"2026-07-28"`, "error"},
		{`"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}`, "error"},
		{`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":7`, "error"},
		{`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"debug"`, `"io.modelcontextprotocol/serverInfo"`},
	} {
		id := i + 1
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"msg":"m"},"_meta":{%s}}}`, id, tc.meta))
		if got := c.answer(id); !strings.Contains(got, tc.want) {
			t.Errorf("_meta {%s}: answered %s, want %s", tc.meta, got, tc.want)
		}
		if _, fast := took.Load(fmt.Sprint(id)); fast {
			t.Errorf("_meta {%s}: taken by the fast lane", tc.meta)
		}
	}
}

// TestFastLaneNewProtocolLogLevel: a 2026-07-28 call that names no log
// level gets no log messages from its tool, as on the SDK's path; the
// same call in the handshake's protocol gets the session's level.
func TestFastLaneNewProtocolLogLevel(t *testing.T) {
	var took sync.Map
	tookHook = func(r *jsonrpc.Request) { took.Store(fmt.Sprint(r.ID.Raw()), true) }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	c := newRawClient(t)
	c.initialize()
	c.send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}`)
	if got := c.answer(1); strings.HasPrefix(got, "error") {
		t.Fatalf("setLevel answered %s", got)
	}
	for i, tc := range []struct {
		name, params string
		fast, logs   bool
	}{
		{"old-protocol", `"name":"logs","arguments":{}`, true, true},
		{"new-protocol/fast-lane", `"name":"logs","arguments":{},` + newProtocolMeta + `}`, true, false},
		{"new-protocol/sdk", `"name":"logs","arguments":{},` + newProtocolMeta + `},"requestState":""`, false, false},
	} {
		id := i + 2
		c.passed = nil
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{%s}}`, id, tc.params))
		if got := c.answer(id); !strings.Contains(got, "logged") {
			t.Fatalf("%s: answered %s", tc.name, got)
		}
		logged := false
		for _, l := range c.passed {
			logged = logged || strings.Contains(l, `"notifications/message"`) && strings.Contains(l, "from the call")
		}
		if logged != tc.logs {
			t.Errorf("%s: log message sent %v, want %v (lines %q)", tc.name, logged, tc.logs, c.passed)
		}
		if _, fast := took.Load(fmt.Sprint(id)); fast != tc.fast {
			t.Errorf("%s: taken by the fast lane %v, want %v", tc.name, fast, tc.fast)
		}
	}
}

// answersAsTheSDK sends each case twice, once as it is and once with a
// member that leaves it to the SDK, and checks that the fast lane took
// the first, and that both were answered and recorded alike.
func answersAsTheSDK(t *testing.T, c *rawClient, cases map[string]struct{ method, params string }) {
	t.Helper()
	var took sync.Map // request id -> true
	tookHook = func(r *jsonrpc.Request) { took.Store(fmt.Sprint(r.ID.Raw()), true) }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	id := 1
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got [2]string
			var kinds [2][]string
			for i, extra := range []string{``, `"requestState":""`} {
				params := tc.params
				if tc.method == "ping" {
					if extra != "" {
						params = `"_meta":{}` // the SDK's
					}
				} else if extra != "" {
					params += "," + extra
				}
				line := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q`, id, tc.method)
				if params != "" {
					line += `,"params":{` + params + `}`
				}
				before := len(c.aud.all())
				c.send(line + "}")
				got[i] = c.answer(id)
				if _, fast := took.Load(fmt.Sprint(id)); fast != (i == 0) {
					t.Errorf("request %d: taken by the fast lane %v, want %v", id, fast, i == 0)
				}
				for _, r := range c.aud.all()[before:] {
					k := r.Kind + "/" + r.Result
					if r.Client != nil {
						k += "/" + r.Client.Name + "@" + r.Client.Version
					}
					kinds[i] = append(kinds[i], k)
				}
				id++
			}
			// The answers differ only in the request id they quote.
			same := strings.ReplaceAll(got[0], fmt.Sprintf(`"request_id":"%d"`, id-2), `"request_id":"?"`) ==
				strings.ReplaceAll(got[1], fmt.Sprintf(`"request_id":"%d"`, id-1), `"request_id":"?"`)
			if !same {
				t.Errorf("fast lane answered\n%s\nthe SDK\n%s", got[0], got[1])
			}
			if fmt.Sprint(kinds[0]) != fmt.Sprint(kinds[1]) {
				t.Errorf("fast lane records %v, the SDK's %v", kinds[0], kinds[1])
			}
		})
	}
}

// TestFastLaneLocalToolRecordsBeforeAnswer: a Local tool's call and
// result records are both written, in that order, before its answer.
func TestFastLaneLocalToolRecordsBeforeAnswer(t *testing.T) {
	c := newRawClient(t)
	c.initialize()
	c.send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"local_echo","arguments":{}}}`)
	if got := c.answer(5); !strings.Contains(got, `local \u003c{}\u003e`) {
		t.Fatalf("answer %s", got)
	}
	var kinds []string
	for _, r := range c.aud.all() {
		kinds = append(kinds, r.Kind)
	}
	if want := []string{audit.KindToolCall, audit.KindToolResult}; fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("records %v, want %v", kinds, want)
	}
}

// TestFastLaneCancel: a call the fast lane runs is cancelled by the
// client's notifications/cancelled and answered as cancelled.
func TestFastLaneCancel(t *testing.T) {
	c := newRawClient(t)
	c.initialize()
	g, _ := newGate(t)
	c.send(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"stuck","arguments":{"gate":"` + g + `"}}}`)
	// The call is running once its allow is recorded.
	deadline := time.Now().Add(10 * time.Second)
	for len(c.aud.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9}}`)
	// Other requests are answered meanwhile.
	c.send(`{"jsonrpc":"2.0","id":10,"method":"ping"}`)
	if got := c.answer(10); got != `{}` {
		t.Errorf("ping answered %s", got)
	}
	// The call ends, cancelled, and is audited so; its answer is not
	// written (the client expects none), and its id is free again.
	deadline = time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(c.aud.all(), func(r audit.Record) bool { return r.Kind == audit.KindToolResult && r.Status == audit.StatusCancelled }) {
		if time.Now().After(deadline) {
			t.Fatalf("no cancelled tool_result: %+v", c.aud.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.send(`{"jsonrpc":"2.0","id":9,"method":"ping"}`)
	if got := c.answer(9); got != `{}` {
		t.Errorf("the id of the cancelled call, reused once it ended: answered %s", got)
	}
	for _, line := range c.passed {
		if strings.Contains(line, `"id":9`) {
			t.Errorf("the cancelled call was answered: %s", line)
		}
	}
}

// TestFastLaneWaitsForInitialize: before initialize, a tools/call goes
// to the SDK, which refuses it; ping is answered.
func TestFastLaneWaitsForInitialize(t *testing.T) {
	c := newRawClient(t)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if got := c.answer(1); got != `{}` {
		t.Errorf("ping answered %s", got)
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"msg":"x"}}}`)
	if got := c.answer(2); !strings.HasPrefix(got, "error ") || !strings.Contains(got, "initialization") {
		t.Errorf("answer %s, want the SDK's refusal before initialize", got)
	}
	if n := len(c.aud.all()); n != 0 {
		t.Errorf("%d audit records for a refused request", n)
	}
}

// TestCallParams: the shapes the fast lane reads and those it leaves to
// the SDK.
func TestCallParams(t *testing.T) {
	for params, want := range map[string]bool{
		`{"name":"t"}`: true,
		`{"name":"t","arguments":{"a":1},"_meta":{}}`:  true,
		`{"name":"t","_meta":{"progressToken":1}}`:     true,
		`{"name":"t","_meta":{"io.mcp-secure/x":"1"}}`: true,
		`{"name":"t","arguments":null}`:                false,
		`{"name":"t","arguments":[]}`:                  false,
		`{"name":"t","name":"u"}`:                      false,
		`{"name":"t\u0041"}`:                           false,
		`{"na\u006de":"t"}`:                            false,
		`{"name":1}`:                                   false,
		`{"Name":"t"}`:                                 false,
		`{"name":"t","task":{}}`:                       false,
		`{"name":"t","_meta":[]}`:                      false,
		`[]`:                                           false,
	} {
		if _, _, proto, got := callParams([]byte(params)); got != want || proto {
			t.Errorf("callParams(%s) = %v (2026-07-28: %v), want %v", params, got, proto, want)
		}
	}
}

// TestCallParamsRequestID: a _meta that holds only the request id the
// transport added is not decoded: the id comes back on its own.
func TestCallParamsRequestID(t *testing.T) {
	for params, want := range map[string]struct {
		id, seen string // returned alone; seen by the pipeline
		meta     bool
	}{
		`{"name":"t","_meta":{"io.mcp-secure/request-id":"7"}}`:                   {"7", "7", false},
		`{"name":"t","_meta":{"io.mcp-secure/request-id":"7","progressToken":1}}`: {"", "7", true},
		`{"name":"t","_meta":{"io.mcp-secure/request-id":"a\"b"}}`:                {"", `a"b`, true},
		`{"name":"t","_meta":{"k":"7"}}`:                                          {"", "", true},
	} {
		p, id, _, ok := callParams([]byte(params))
		if !ok {
			t.Errorf("callParams(%s) left to the SDK", params)
			continue
		}
		if id != want.id || (p.Meta != nil) != want.meta {
			t.Errorf("callParams(%s) = id %q, _meta %v (%v), want id %q, _meta %v", params, id, p.Meta, ok, want.id, want.meta)
			continue
		}
		ctx := context.Background()
		if id != "" {
			ctx = context.WithValue(ctx, requestIDKey{}, id)
		}
		if seen, _ := requestIDOf(ctx, p.Meta); seen != want.seen {
			t.Errorf("callParams(%s): the pipeline sees request id %q, want %q", params, seen, want.seen)
		}
	}
}

// TestCallParamsNewProtocol: the _meta of a 2026-07-28 tools/call is
// taken only in the shape the SDK accepts, checked by its decoders.
func TestCallParamsNewProtocol(t *testing.T) {
	const v, caps, info = `"io.modelcontextprotocol/protocolVersion":`, `"io.modelcontextprotocol/clientCapabilities":`, `"io.modelcontextprotocol/clientInfo":`
	for meta, want := range map[string]bool{
		v + `"2026-07-28",` + caps + `{}`: true,
		v + `"2026-07-28",` + caps + `{"roots":{"listChanged":true}},` + info + `{"name":"c","version":"1"}`: true,
		v + `"2026-07-28",` + caps + `{},` + info + `{"name":"c","version":"1"},"progressToken":3`:           true,
		v + `"2026-07-28"`: false, // no capabilities: the SDK refuses it
		v + `"2026-07-28",` + caps + `{},` + info + `null`:                             false,
		v + `"2026-07-28",` + caps + `{},` + info + `"c"`:                              false,
		v + `"2026-07-28",` + caps + `"all"`:                                           false,
		v + `"2026-07-28",` + caps + `{"roots":{"listChanged":"yes"}}`:                 false,
		v + `"2026-07-28",` + caps + `{},"io.modelcontextprotocol/logLevel":"info"`:    false,
		v + `"2026-07-28",` + caps + `{},"io.modelcontextprotocol/subscriptionId":"s"`: false,
		v + `"2025-11-25",` + caps + `{}`:                                              false, // the old protocol: the SDK's
		v + `"2099-01-01",` + caps + `{}`:                                              false, // not supported
		v + `20260728,` + caps + `{}`:                                                  false,
	} {
		for range 2 { // the second time from the memo, when taken
			_, _, proto, ok := callParams([]byte(`{"name":"t","arguments":{},"_meta":{` + meta + `}}`))
			if ok != want || proto != want {
				t.Errorf("callParams with _meta {%s} = %v (2026-07-28: %v), want %v", meta, ok, proto, want)
			}
		}
	}
}

// endingInput is input that ends as a terminal does: once (a read
// reports io.EOF) and then waits for more, until closed.
type endingInput struct {
	lines  chan string
	ended  bool
	closed chan struct{}
}

func (in *endingInput) Read(p []byte) (int, error) {
	if in.ended {
		<-in.closed
		return 0, io.EOF
	}
	line, ok := <-in.lines
	if !ok {
		in.ended = true
		return 0, io.EOF
	}
	return copy(p, line), nil
}

// TestFastLaneLastLineHandsNothingOn: a lone call of a tool that waits
// (which the reader runs, handing the reading on) that comes with the
// end of the input is answered, and the server ends: nobody is left
// reading input that already ended (a terminal would wait for more).
func TestFastLaneLastLineHandsNothingOn(t *testing.T) {
	s, err := New(Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: &fakeLimiter{limit: map[string]int{}},
		Audit: &fakeAuditor{}, Timeout: 10 * time.Second, Plugins: []string{"pipeline-test"}})
	if err != nil {
		t.Fatal(err)
	}
	in := &endingInput{lines: make(chan string, 4), closed: make(chan struct{})}
	defer close(in.closed)
	cIn, sOut, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer cIn.Close()
	ended := make(chan struct{})
	go func() { s.Run(context.Background(), in, sOut); sOut.Close(); close(ended) }()
	answers := bufio.NewScanner(cIn)
	next := func() string {
		if !answers.Scan() {
			t.Fatalf("output ended: %v", answers.Err())
		}
		return answers.Text()
	}
	var taken []string
	tookHook = func(r *jsonrpc.Request) { taken = append(taken, r.Method) }
	defer func() { tookHook = func(*jsonrpc.Request) {} }()
	in.lines <- `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n"
	if got := next(); !strings.Contains(got, `"id":1`) {
		t.Fatalf("initialize answered %s", got)
	}
	in.lines <- `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n"
	// The last line, with no newline: it comes with the end of the input.
	in.lines <- `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"msg":"last"}}}`
	close(in.lines)
	if got := next(); !strings.Contains(got, `"id":2`) || !strings.Contains(got, `"last"`) {
		t.Fatalf("the call answered %s", got)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not end at the end of its input")
	}
	if !slices.Contains(taken, "tools/call") {
		t.Errorf("the fast lane took %v, not the call", taken)
	}
}
