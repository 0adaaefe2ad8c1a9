package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// connFor starts a stdioConn over in and returns it with its output.
func connFor(t testing.TB, in string) (*stdioConn, *bytes.Buffer) {
	var out bytes.Buffer
	tr := &StdioTransport{In: strings.NewReader(in), Out: &syncWriter{w: &out}, MaxMessageBytes: 256, MaxDepth: 8}
	c, err := tr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.(*stdioConn), &out
}

type syncWriter struct{ w io.Writer }

func (s *syncWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// drain reads messages until EOF.
func drain(t testing.TB, c *stdioConn) []jsonrpc.Message {
	var msgs []jsonrpc.Message
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := c.Read(ctx)
		cancel()
		if err != nil {
			if err != io.EOF {
				t.Fatalf("read: %v", err)
			}
			return msgs
		}
		msgs = append(msgs, m)
	}
}

func TestStdioConnRejectsAndContinues(t *testing.T) {
	lines := []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":2,"method":`,                                                                        // parse error
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"\xff\"}",                                                       // invalid UTF-8
		`[{"jsonrpc":"2.0","id":4,"method":"ping"}]`,                                                               // batch
		`{"jsonrpc":"2.0","id":5,"method":"x","params":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`, // too deep
		`{"jsonrpc":"2.0","id":6,"method":"ping","params":{"pad":"` + strings.Repeat("x", 300) + `"}}`,             // too long
		`{"id":7,"method":"ping"}`,                                                                                 // not JSON-RPC 2.0
		``,                                                                                                         // blank lines are skipped
		"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}}\r",
		`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":[]}`,
		`{"jsonrpc":"2.0","id":10,"method":"ping"}`,
	}
	c, out := connFor(t, strings.Join(lines, "\n")+"\n")
	msgs := drain(t, c)
	var ids []any
	for _, m := range msgs {
		ids = append(ids, m.(*jsonrpc.Request).ID.Raw())
	}
	if len(ids) != 3 || ids[0] != int64(1) || ids[1] != int64(8) || ids[2] != int64(10) {
		t.Fatalf("delivered ids %v, want [1 8 10]", ids)
	}
	// tools/call carries its id to the pipeline in _meta.
	var p struct {
		Meta map[string]any `json:"_meta"`
	}
	json.Unmarshal(msgs[1].(*jsonrpc.Request).Params, &p)
	if p.Meta[requestIDMeta] != "8" {
		t.Errorf("request id meta = %v", p.Meta)
	}

	type errResp struct {
		ID    any `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	var got []errResp
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var r errResp
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line is not JSON: %q", sc.Text())
		}
		got = append(got, r)
	}
	want := []struct {
		code int
		id   any
		msg  string
	}{
		{-32700, nil, "not valid JSON"},
		{-32700, nil, "UTF-8"},
		{-32600, nil, "batches"},
		{-32600, float64(5), "nests deeper"},
		{-32600, nil, "exceeds 256 bytes"},
		{-32600, float64(7), "JSON-RPC 2.0"},
		{-32602, float64(9), "object"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d error responses, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Error.Code != w.code || got[i].ID != w.id || !strings.Contains(got[i].Error.Message, w.msg) {
			t.Errorf("response %d = %+v, want code %d id %v containing %q", i, got[i], w.code, w.id, w.msg)
		}
	}
}

func TestRequestIDMetaCannotBeSpoofed(t *testing.T) {
	c, _ := connFor(t, `{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"t","_meta":{"io.mcp-secure/request-id":"forged","other":1}}}`+"\n")
	msgs := drain(t, c)
	var p struct {
		Meta map[string]any `json:"_meta"`
	}
	json.Unmarshal(msgs[0].(*jsonrpc.Request).Params, &p)
	if p.Meta[requestIDMeta] != "abc" || p.Meta["other"] != float64(1) {
		t.Errorf("meta = %v", p.Meta)
	}
}

func TestDepth(t *testing.T) {
	for in, want := range map[string]int{
		`1`:                  0,
		`{"a":[1,{"b":[]}]}`: 4,
		`"[[[["`:             0,
		`{"a":"\"[[["}`:      1,
		`[[],[[]]]`:          3,
		`{"k\\":"[","x":[]}`: 2,
	} {
		if got := depth([]byte(in)); got != want {
			t.Errorf("depth(%s) = %d, want %d", in, got, want)
		}
	}
}

// FuzzStdioConn feeds arbitrary bytes to the transport: it must never
// panic or hang, every line it writes must be a JSON object, and a valid
// request that follows the garbage must still be delivered.
func FuzzStdioConn(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`[1,2`,
		"\xff\xfe",
		`{"jsonrpc":"2.0","id":{"x":1},"method":"tools/call","params":{"name":1}}`,
		strings.Repeat("{", 40),
		`{"jsonrpc":"2.0","id":null,"method":"tools/call","params":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := string(bytes.ReplaceAll(data, []byte("\n"), []byte(" "))) + "\n" + `{"jsonrpc":"2.0","id":"last","method":"ping"}` + "\n"
		c, out := connFor(t, in)
		msgs := drain(t, c)
		if len(msgs) == 0 {
			t.Fatal("the valid request after the input was lost")
		}
		last, ok := msgs[len(msgs)-1].(*jsonrpc.Request)
		if !ok || last.ID.Raw() != "last" {
			t.Fatalf("last message = %#v", msgs[len(msgs)-1])
		}
		for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("wrote a line that is not a JSON object: %q", line)
			}
		}
	})
}

func TestCleanParamsError(t *testing.T) {
	for name, tc := range map[string]struct{ method, in, want string }{
		"go-field": {"tools/call", `handling 'tools/call': invalid params: unmarshaling "{\"_meta\":{\"io.mcp-secure/request-id\":\"1\"},\"name\":5}" into a *mcp.CallToolParamsRaw: json: cannot unmarshal "5}" into Go struct field mcp.CallToolParamsRaw.name of type string`,
			`invalid params for "tools/call": "name" must be a string`},
		"slice":     {"tools/list", `json: cannot unmarshal string into Go struct field X.items of type []string`, `invalid params for "tools/list": "items" must be an array`},
		"meta-echo": {"tools/call", `unmarshaling {"_meta":{"io.mcp-secure/request-id":"1"}} failed`, `invalid params for "tools/call": params do not have the shape the method takes`},
		"plain":     {"x", `missing field "name"`, `missing field "name"`},
	} {
		t.Run(name, func(t *testing.T) {
			got := cleanParamsError(tc.method, tc.in)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if strings.Contains(got, requestIDMeta) || strings.Contains(got, "Go struct") || strings.Contains(got, "mcp.") {
				t.Errorf("leaks internals: %q", got)
			}
		})
	}
}

func TestWithoutCacheFields(t *testing.T) {
	for in, want := range map[string]string{
		`{"ttlMs":0,"cacheScope":"private","tools":[{"name":"a"}]}`: `{"tools":[{"name":"a"}]}`,
		`{"ttlMs":10,"cacheScope":"public"}`:                        `{}`,
		`{"tools":[],"ttlMs":5,"cacheScope":"public"}`:              `{"tools":[]}`,
		`{"tools":[{"name":"{\"ttlMs\":1,"}]}`:                      `{"tools":[{"name":"{\"ttlMs\":1,"}]}`,
	} {
		var got, exp any
		if err := json.Unmarshal(withoutCacheFields(json.RawMessage(in)), &got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		json.Unmarshal([]byte(want), &exp)
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("%s: got %v, want %v", in, got, exp)
		}
	}
}

// gatedWriter blocks each Write until its gate is opened.
type gatedWriter struct {
	entered chan struct{}
	gate    chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gatedWriter) text() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// TestDrainWaitsForTheWrittenAnswer: at the end of input the transport
// ends (and with it the process) only once the last answer is written,
// not when it is handed to the writer: an answer still on its way out
// would be lost.
func TestDrainWaitsForTheWrittenAnswer(t *testing.T) {
	in, inW := io.Pipe()
	out := &gatedWriter{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	ended := make(chan struct{})
	tr := &StdioTransport{In: in, Out: out, DrainTimeout: 5 * time.Second, OnEnd: func() { close(ended) }}
	conn, err := tr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*stdioConn)
	go func() {
		inW.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}` + "\n"))
		inW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	req := msg.(*jsonrpc.Request)
	wrote := make(chan error, 1)
	go func() {
		wrote <- c.Write(context.Background(), &jsonrpc.Response{ID: req.ID, Result: json.RawMessage(`{"tools":[]}`)})
	}()
	select {
	case <-out.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the answer never reached the writer")
	}
	select {
	case <-ended:
		t.Fatal("the transport ended while its last answer was still being written")
	case <-time.After(200 * time.Millisecond):
	}
	close(out.gate)
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v", err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the transport did not end after its last answer was written")
	}
	if !strings.Contains(out.text(), `"id":1`) {
		t.Errorf("output %q lacks the answer", out.text())
	}
}

// A client that does not read its output holds back its own input: the
// requests in flight and the answers not yet written stay within the
// in-flight cap, instead of the answers (and the goroutines writing
// them) piling up without end. Once the output is read, every request
// is answered.
func TestUnreadOutputHoldsBackInput(t *testing.T) {
	const maxFlight, requests = 4, 40
	in, inW := io.Pipe()
	out := &gatedWriter{entered: make(chan struct{}, requests), gate: make(chan struct{})}
	tr := &StdioTransport{In: in, Out: out, MaxInFlight: maxFlight, DrainTimeout: 5 * time.Second}
	conn, err := tr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*stdioConn)
	sent := make(chan int, requests)
	go func() {
		for i := 1; i <= requests; i++ {
			if _, err := fmt.Fprintf(inW, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\"}\n", i); err != nil {
				return
			}
			sent <- i
		}
		inW.Close()
	}()
	// Answer each request as the SDK does: a goroutine each, writing.
	go func() {
		for {
			msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			go c.Write(context.Background(), &jsonrpc.Response{ID: msg.(*jsonrpc.Request).ID, Result: json.RawMessage(`{"tools":[]}`)})
		}
	}()
	// The input stops being read: the last request sent stays put.
	last, still := 0, 0
	for still < 10 {
		select {
		case n := <-sent:
			last, still = n, 0
		case <-time.After(50 * time.Millisecond):
			still++
		}
	}
	// One request read and held by the waiting reader, one whose write
	// the pipe has taken but the reader not: the cap plus two at most.
	if last > maxFlight+2 {
		t.Fatalf("%d requests were read while none of their answers could be written (cap %d)", last, maxFlight)
	}
	close(out.gate)
	deadline := time.After(10 * time.Second)
	for last < requests {
		select {
		case last = <-sent:
		case <-deadline:
			t.Fatalf("only %d of %d requests were read after the output was", last, requests)
		}
	}
	for !strings.Contains(out.text(), fmt.Sprintf(`"id":%d,`, requests)) {
		select {
		case <-deadline:
			t.Fatalf("the last answer was not written: %q", out.text())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A request the client cancelled keeps its id until its call has ended:
// a request that reuses the id before is refused as a duplicate, the
// cancelled call's answer is not written, and the id is free after it.
func TestCancelledIDStaysInFlightUntilTheCallEnds(t *testing.T) {
	in, inW := io.Pipe()
	sw := &lineRecorder{}
	tr := &StdioTransport{In: in, Out: sw, DrainTimeout: 5 * time.Second}
	conn, err := tr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*stdioConn)
	// Read as the SDK does, all along: notifications too.
	reqs := make(chan *jsonrpc.Request, 8)
	go func() {
		for {
			m, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if r, ok := m.(*jsonrpc.Request); ok && r.ID.IsValid() {
				reqs <- r
			}
		}
	}()
	read := func() *jsonrpc.Request {
		t.Helper()
		select {
		case r := <-reqs:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no request delivered")
			return nil
		}
	}
	for i, id := range []string{`"r0"`, `7`} {
		fmt.Fprintf(inW, `{"jsonrpc":"2.0","id":%s,"method":"tools/list"}`+"\n", id)
		first := read()
		fmt.Fprintf(inW, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%s}}`+"\n", id)
		fmt.Fprintf(inW, `{"jsonrpc":"2.0","id":%s,"method":"tools/list","params":{"cursor":"again"}}`+"\n", id)
		// This round's refusal, not the last round's.
		waitCount(t, sw, "already in flight", i+1)
		if err := c.Write(context.Background(), &jsonrpc.Response{ID: first.ID, Result: json.RawMessage(`{"tools":[],"cancelled":"yes"}`)}); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(inW, `{"jsonrpc":"2.0","id":%s,"method":"tools/list","params":{"cursor":"third"}}`+"\n", id)
		if third := read(); !strings.Contains(string(third.Params), "third") {
			t.Fatalf("id %s after the cancelled call ended: delivered %s, want the third request", id, third.Params)
		}
		if strings.Contains(sw.String(), `"cancelled":"yes"`) {
			t.Fatalf("the cancelled call's answer was written: %s", sw.String())
		}
		if err := c.Write(context.Background(), &jsonrpc.Response{ID: first.ID, Result: json.RawMessage(`{"tools":[]}`)}); err != nil {
			t.Fatal(err)
		}
	}
	inW.Close()
}

// waitText waits until w's output holds want.
func waitText(t *testing.T, w *lineRecorder, want string) {
	t.Helper()
	waitCount(t, w, want, 1)
}

// waitCount waits until w's output holds want n times.
func waitCount(t *testing.T, w *lineRecorder, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(w.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("output holds %q fewer than %d times: %s", want, n, w.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTopLevelID: the id of a message read without descending into its
// other members, however deep; none from what is not an object, or an id
// an answer could not carry back as sent.
func TestTopLevelID(t *testing.T) {
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	for _, tc := range []struct {
		line string
		want any // nil: no id
	}{
		{`{"jsonrpc":"2.0","id":5,"method":"x","params":` + deep + `}`, int64(5)},
		{`{"params":{"a":` + deep + `},"id":"abc"}`, "abc"},
		{` { "id" : 7 , "x" : "]}\"[" } `, int64(7)},
		{`{"x":` + deep + `}`, nil},
		{`{"id":1.5,"x":` + deep + `}`, nil},
		{`{"id":{"a":1},"x":1}`, nil},
		{`{"id":null}`, nil},
		{deep, nil},
		{`{"id":5,"x":[[[`, nil},
		{`{"\u0069d":5}`, nil},
	} {
		got := topLevelID([]byte(tc.line))
		var raw any
		if got != nil {
			raw = got.Raw()
		}
		if raw != tc.want {
			short := tc.line
			if len(short) > 60 {
				short = short[:60] + "…"
			}
			t.Errorf("topLevelID(%s) = %v, want %v", short, raw, tc.want)
		}
	}
}

// FuzzTopLevelID: whatever the line, topLevelID neither panics nor finds
// an id where a decoder finds another.
func FuzzTopLevelID(f *testing.F) {
	for _, seed := range []string{`{"id":5,"x":[[[]]]}`, `{"id":"a\"b","p":{"q":[1,{"r":"]"}]}}`, `[`, `{"id":`, `{"a":"\`, `{"id":1e3}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		got := topLevelID(line)
		if got == nil || !json.Valid(line) {
			return
		}
		if want := peekID(line); want == nil || fmt.Sprint(want.Raw()) != fmt.Sprint(got.Raw()) {
			t.Errorf("topLevelID(%q) = %v, a decoder reads %v", line, got.Raw(), want)
		}
	})
}
