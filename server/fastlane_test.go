package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
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
		}}}
}

// rawClient speaks JSON-RPC lines to a server run over pipes.
type rawClient struct {
	t     *testing.T
	in    io.WriteCloser
	lines chan string
	aud   *fakeAuditor
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
				continue // a notification, or another answer
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
	var took sync.Map // request id -> true
	tookHook = func(r *jsonrpc.Request) { took.Store(fmt.Sprint(r.ID.Raw()), true) }
	t.Cleanup(func() { tookHook = func(*jsonrpc.Request) {} })
	c := newRawClient(t)
	c.initialize()
	cases := map[string]struct{ method, params string }{
		"ping":                 {"ping", ``},
		"allow":                {"tools/call", `"name":"echo","arguments":{"msg":"a<b&c"}`},
		"allow/local":          {"tools/call", `"name":"local_echo","arguments":{"x":[1,2]}`},
		"allow/meta":           {"tools/call", `"name":"echo","arguments":{"msg":"m"},"_meta":{"progressToken":7,"k":"v"}`},
		"deny/unknown-tool":    {"tools/call", `"name":"no_such_tool","arguments":{}`},
		"deny/invalid":         {"tools/call", `"name":"echo","arguments":{"msg":"far too long a message"}`},
		"deny/no-arguments":    {"tools/call", `"name":"echo"`},
		"error/handler-failed": {"tools/call", `"name":"fails","arguments":{}`},
	}
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
					kinds[i] = append(kinds[i], r.Kind+"/"+r.Result)
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
	if got := c.answer(9); !strings.Contains(got, "was cancelled") {
		t.Errorf("answer %s, want a cancellation", got)
	}
	// Other requests are answered meanwhile.
	c.send(`{"jsonrpc":"2.0","id":10,"method":"ping"}`)
	if got := c.answer(10); got != `{}` {
		t.Errorf("ping answered %s", got)
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
		`{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`: false,
		`[]`: false,
	} {
		if _, got := callParams([]byte(params)); got != want {
			t.Errorf("callParams(%s) = %v, want %v", params, got, want)
		}
	}
}
