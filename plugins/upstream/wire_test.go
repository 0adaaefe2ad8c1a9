package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// startRaw starts an Upstream over a rawLauncher with script, logging to
// the returned buffer.
func startRaw(t *testing.T, script func(u *rawUpstream, tool string, id json.RawMessage, args json.RawMessage)) (*Upstream, *rawLauncher, *lockedBuf) {
	t.Helper()
	l := &rawLauncher{script: script}
	var logs lockedBuf
	u, err := New(t.Context(), Config{Name: "raw", Prefix: "raw__", Launcher: l, Pins: &memPins{pinned: map[string]string{}},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	})
	return u, l, &logs
}

// callRaw calls tool (raw__tool) with args.
func callRaw(ctx context.Context, t *testing.T, u *Upstream, name, args string) (*plugin.Result, error) {
	t.Helper()
	return tool(t, u, "raw__"+name).Handler(ctx, &plugin.Call{Tool: "raw__" + name, Arguments: json.RawMessage(args)})
}

// TestWireAnswers: what the upstream writes back to a call, over real
// pipes, and the result the call gets.
func TestWireAnswers(t *testing.T) {
	for name, tc := range map[string]struct {
		script  func(u *rawUpstream, id json.RawMessage, args json.RawMessage)
		args    string
		want    string // the result's text, or a part of it for errors
		isError bool
		logged  string
	}{
		"ok/echo": {
			script: func(u *rawUpstream, id, args json.RawMessage) { echoScript(u, "", id, args) },
			args:   `{"text":"hi"}`, want: "hi",
		},
		"ok/pretty-printed-arguments-sent-as-one-line": {
			script: func(u *rawUpstream, id, args json.RawMessage) { echoScript(u, "", id, args) },
			args:   "{\n  \"text\": \"multi\"\n}", want: "multi",
		},
		"ok/garbage-line-before-the-answer": {
			script: func(u *rawUpstream, id, _ json.RawMessage) {
				u.send("Server listening on stdio (a stray console.log)")
				u.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":"after the garbage"}]}}`)
			},
			want: "after the garbage", logged: "not JSON",
		},
		"ok/answers-to-other-ids-dropped": {
			script: func(u *rawUpstream, id, _ json.RawMessage) {
				u.answer(json.RawMessage(`"ms-999999"`), "not yours")
				u.answer(json.RawMessage(`999999`), "not yours either")
				u.answer(id, "yours")
			},
			want: "yours", logged: "no call in flight",
		},
		"ok/id-prefix-in-a-request-is-no-answer": {
			script: func(u *rawUpstream, id, _ json.RawMessage) {
				// A request of the upstream's own with an id like ours
				// goes to the SDK (which refuses it), not to the call.
				u.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"method":"sampling/createMessage","params":{}}`)
				u.answer(id, "the answer")
			},
			want: "the answer",
		},
		"ok/answer-in-a-batch": {
			script: func(u *rawUpstream, id, _ json.RawMessage) {
				// MCP has dropped batches; a server that still sends one
				// has its answer taken all the same.
				u.send(`[{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}},` +
					`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":"batched"}]}}]`)
			},
			want: "batched",
		},
		"ok/oversize-text-truncated": {
			script: func(u *rawUpstream, id, _ json.RawMessage) { u.answer(id, strings.Repeat("x", 2*MaxResultText)) },
			want:   strings.Repeat("x", MaxResultText) + "\n[truncated: the upstream's result exceeded 1 MiB]",
		},
		"ok/tool-error-kept": {
			script: func(u *rawUpstream, id, _ json.RawMessage) {
				u.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":"bad input"}],"isError":true}}`)
			},
			want: "bad input", isError: true,
		},
		"error/refused": {
			script: func(u *rawUpstream, id, _ json.RawMessage) {
				u.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"error":{"code":-32602,"message":"unknown tool"}}`)
			},
			want: `refused the call: unknown tool`, isError: true,
		},
		"error/not-a-result": {
			script: func(u *rawUpstream, id, _ json.RawMessage) {
				u.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":"a string"}}`)
			},
			want: "not a tool result", isError: true, logged: "could not be read",
		},
		"error/neither-result-nor-error": {
			script: func(u *rawUpstream, id, _ json.RawMessage) { u.send(`{"jsonrpc":"2.0","id":` + string(id) + `}`) },
			want:   "not a tool result", isError: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			u, _, logs := startRaw(t, func(u *rawUpstream, _ string, id, args json.RawMessage) { tc.script(u, id, args) })
			args := tc.args
			if args == "" {
				args = `{}`
			}
			res, err := callRaw(t.Context(), t, u, "echo", args)
			if err != nil {
				t.Fatal(err)
			}
			if res.IsError != tc.isError || (!tc.isError && res.Text != tc.want) || !strings.Contains(res.Text, tc.want) {
				t.Errorf("result = %.200q (error %v), want %.200q (error %v)", res.Text, res.IsError, tc.want, tc.isError)
			}
			if tc.logged != "" && !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log lacks %q:\n%s", tc.logged, logs.String())
			}
			// The connection still serves calls.
			if !strings.HasPrefix(name, "ok/") {
				return
			}
			u.mu.Lock()
			w := u.wire
			u.mu.Unlock()
			if w == nil {
				t.Fatal("no connection")
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.err != nil {
				t.Errorf("the connection ended: %v", w.err)
			}
		})
	}
}

// waitRestarted waits for launch n to serve the echo tool.
func waitRestarted(t *testing.T, u *Upstream, l *rawLauncher, n int) {
	t.Helper()
	waitFor(t, "restart", func() bool {
		if l.count() < n {
			return false
		}
		res, err := callRaw(t.Context(), t, u, "echo", `{"text":"back"}`)
		return err == nil && !res.IsError && res.Text == "back"
	})
}

// TestWireUpstreamDiesMidCall: a call in flight when the process exits
// gets an error result, and the upstream is started again.
func TestWireUpstreamDiesMidCall(t *testing.T) {
	u, l, _ := startRaw(t, func(u *rawUpstream, tool string, id, args json.RawMessage) {
		if tool == "other" {
			u.exit()
			return
		}
		echoScript(u, tool, id, args)
	})
	res, err := callRaw(t.Context(), t, u, "other", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(res.Text, "stopped during the call") {
		t.Errorf("result = %+v", res)
	}
	waitRestarted(t, u, l, 2)
}

// TestWireOversizeMessage: a message over the cap closes the connection:
// the call gets an error result saying why, and the upstream restarts.
func TestWireOversizeMessage(t *testing.T) {
	u, l, logs := startRaw(t, func(u *rawUpstream, tool string, id, args json.RawMessage) {
		if tool == "other" {
			u.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":"` + strings.Repeat("y", maxMessage) + `"}]}}`)
			return
		}
		echoScript(u, tool, id, args)
	})
	res, err := callRaw(t.Context(), t, u, "other", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(res.Text, "over 16 MiB") {
		t.Errorf("result = %.200q", res.Text)
	}
	if !strings.Contains(logs.String(), "over the limit") {
		t.Errorf("log lacks the reason:\n%s", logs.String())
	}
	waitRestarted(t, u, l, 2)
}

// TestWireCancelled: a call whose context ends before the answer returns
// the context's error, and the upstream is told with
// notifications/cancelled naming the call's id; a late answer is
// dropped and the connection keeps serving.
func TestWireCancelled(t *testing.T) {
	ids := make(chan json.RawMessage, 1)
	u, l, _ := startRaw(t, func(u *rawUpstream, tool string, id, args json.RawMessage) {
		if tool == "other" {
			ids <- id // never answered now
			return
		}
		echoScript(u, tool, id, args)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := callRaw(ctx, t, u, "other", `{}`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	id := <-ids
	select {
	case got := <-l.upstream(0).cancelled:
		if got != string(id) {
			t.Errorf("cancelled %s, want %s", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/cancelled")
	}
	l.upstream(0).answer(id, "too late")
	res, err := callRaw(t.Context(), t, u, "echo", `{"text":"still here"}`)
	if err != nil || res.Text != "still here" {
		t.Errorf("after a cancel: %+v, %v", res, err)
	}
}

// TestWireUpstreamStopsReading: a call to an upstream that no longer
// reads its stdin ends with its context, even while its request is being
// written; a request cut short closes the connection (the rest would be
// read as the next message) and the upstream restarts.
func TestWireUpstreamStopsReading(t *testing.T) {
	u, l, _ := startRaw(t, func(u *rawUpstream, tool string, id, args json.RawMessage) {
		if tool == "other" {
			<-u.done // the server stops reading its stdin until it exits
			return
		}
		echoScript(u, tool, id, args)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := callRaw(ctx, t, u, "other", `{}`); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	// More than the pipe holds: the write blocks until the deadline.
	big := `{"text":"` + strings.Repeat("z", 1<<20) + `"}`
	ctx, cancel = context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := callRaw(ctx, t, u, "echo", big)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not end with its context")
	}
	waitRestarted(t, u, l, 2)
}

// FuzzWireRead: whatever the upstream writes to its stdout, the reader
// neither panics nor hangs; a call in flight gets an answer or the end of
// the connection, and messages not for a call reach the SDK side whole
// and valid.
func FuzzWireRead(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":"ms-1","result":{"content":[{"type":"text","text":"hi"}]}}` + "\n",
		`{"jsonrpc":"2.0","id":"ms-1","error":{"code":-1,"message":"no"}}` + "\n",
		`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"ms-1"}}` + "\n",
		"garbage\n\n  \n[1,2]\n",
		`{"jsonrpc":"2.0","id":"ms-1","result":{"content":"x"}}`,
		`{"id":"ms-18446744073709551616"}` + "\n" + `{"id":"ms-1","method":"x"}` + "\n",
		`{"id":"ms-1","result":{"content":[{"type":"image","data":"\u0041Q=="}],"structuredContent":{"a":1}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inR, inW := io.Pipe()
		go io.Copy(io.Discard, inR)
		w := newWire(inW, io.NopCloser(bytes.NewReader(data)), slog.New(slog.DiscardHandler))
		var forwarded [][]byte
		sdkDone := make(chan struct{})
		go func() {
			defer close(sdkDone)
			for m := range w.toSDK {
				forwarded = append(forwarded, m)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := w.call(ctx, "echo", json.RawMessage(`{}`), "")
		if err == nil {
			if res == nil {
				t.Fatal("no result and no error")
			}
			res.convert()
		} else if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("the call was never answered nor failed")
		}
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the reader did not end at the end of its input")
		}
		<-sdkDone
		for _, m := range forwarded {
			if !json.Valid(m) {
				t.Errorf("forwarded a message that is not JSON: %q", m)
			}
		}
		inW.Close()
	})
}

// TestWireUpstreamRequestFlood: an upstream that sends requests of its
// own and does not read the answers gets at most maxAsked of them
// answered at a time (the SDK answers each on a goroutine of its own),
// and once an answer waits sdkWriteTimeout it is started again.
func TestWireUpstreamRequestFlood(t *testing.T) {
	old := sdkWriteTimeout
	sdkWriteTimeout = 300 * time.Millisecond
	t.Cleanup(func() { sdkWriteTimeout = old })
	var flooded atomic.Bool
	peak := make(chan int, 1)
	u, l, logs := startRaw(t, func(u *rawUpstream, tool string, id, args json.RawMessage) {
		if tool == "other" && flooded.CompareAndSwap(false, true) {
			// Far more answers than its stdin pipe holds, none read.
			for i := range 5000 {
				u.send(`{"jsonrpc":"2.0","id":"up-` + strconv.Itoa(i) + `","method":"ping"}`)
			}
			peak <- runtime.NumGoroutine()
			<-u.done
			return
		}
		echoScript(u, tool, id, args)
	})
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if res, err := callRaw(ctx, t, u, "other", `{}`); err == nil && !res.IsError {
		t.Fatalf("the call through a flooding upstream succeeded: %+v", res)
	}
	waitRestarted(t, u, l, 2)
	if n := <-peak; n > before+4*maxAsked {
		t.Errorf("%d goroutines once the upstream had sent 5000 requests, %d before", n, before)
	}
	if !strings.Contains(logs.String(), "stopped reading its stdin") {
		t.Errorf("log %s, want the stall said", logs.String())
	}
}

// A call is forwarded only to the definition its decision saw: one the
// upstream changed (or took away) since, by a listing between the
// decision and the forwarding, is refused, and the upstream never gets
// it.
func TestCallRefusedWhenTheDefinitionChangedSinceTheDecision(t *testing.T) {
	var calls atomic.Int32
	u, _, _ := startRaw(t, func(u *rawUpstream, tool string, id, args json.RawMessage) {
		calls.Add(1)
		echoScript(u, tool, id, args)
	})
	echo := tool(t, u, "raw__echo")
	if st := echo.Definition(); st.Changed {
		t.Fatalf("state before: %+v", st)
	}
	u.mu.Lock()
	offered := u.hashes["echo"]
	u.hashes["echo"] = "another definition"
	u.mu.Unlock()
	res, err := echo.Handler(t.Context(), &plugin.Call{Tool: "raw__echo", Arguments: json.RawMessage(`{"text":"x"}`)})
	if err != nil || !res.IsError || !strings.Contains(res.Text, "changed tool") {
		t.Errorf("a call after the definition changed: %+v %v", res, err)
	}
	u.mu.Lock()
	delete(u.hashes, "echo")
	u.mu.Unlock()
	res, err = echo.Handler(t.Context(), &plugin.Call{Tool: "raw__echo", Arguments: json.RawMessage(`{"text":"x"}`)})
	if err != nil || !res.IsError || !strings.Contains(res.Text, "no longer offers") {
		t.Errorf("a call after the tool was taken away: %+v %v", res, err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the upstream got %d calls", n)
	}
	u.mu.Lock()
	u.hashes["echo"] = offered
	u.mu.Unlock()
	if res, err := echo.Handler(t.Context(), &plugin.Call{Tool: "raw__echo", Arguments: json.RawMessage(`{"text":"x"}`)}); err != nil || res.IsError {
		t.Errorf("a call as decided: %+v %v", res, err)
	}
}

// An upstream's stderr reaches the server's log up to 1 MiB per process;
// the rest is read (the upstream never blocks) and dropped, once said.
func TestUpstreamStderrIsBounded(t *testing.T) {
	u, _, logs := startRaw(t, func(u *rawUpstream, tool string, id, args json.RawMessage) {
		if tool == "other" {
			line := strings.Repeat("e", 1000) + "\n"
			for range 3000 { // about 3 MB
				u.errW.WriteString(line)
			}
			u.answer(id, "wrote")
			return
		}
		echoScript(u, tool, id, args)
	})
	if res, err := callRaw(t.Context(), t, u, "other", `{}`); err != nil || res.Text != "wrote" {
		t.Fatalf("call: %+v %v", res, err)
	}
	waitFor(t, "the drop said", func() bool { return strings.Contains(logs.String(), "the rest is dropped") })
	if n := strings.Count(logs.String(), "upstream stderr\""); n > maxStderrLog/1000+2 || n < maxStderrLog/1000-2 {
		t.Errorf("%d stderr lines logged, want about %d", n, maxStderrLog/1000)
	}
}

// answerLines answers every tools/call request read from r with the text
// "ok", on out, until r ends, and sends each message's method and params
// to seen (when set).
func answerLines(r io.Reader, out io.Writer, seen chan<- string) {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if dec.Decode(&msg) != nil {
			return
		}
		if seen != nil {
			seen <- msg.Method + " " + string(msg.Params)
		}
		if len(msg.ID) > 0 {
			fmt.Fprintf(out, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ok"}]}}`+"\n", msg.ID)
		}
	}
}

// within runs call and fails t unless it returns, with an error wrapping
// want (nil: no error), in 10 seconds.
func within(t *testing.T, call func() error, want error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		if want == nil && err != nil || !errors.Is(err, want) {
			t.Fatalf("err = %v, want %v", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not return with its context")
	}
}

// pipes returns the two ends of two os.Pipes: the upstream's stdin (it
// reads inR) and stdout (it writes outW).
func pipes(t *testing.T) (inR, inW, outR, outW *os.File) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err = os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inR.Close(); outW.Close() })
	return inR, inW, outR, outW
}

// countedFile counts the writes to File that have begun and returned.
type countedFile struct {
	*os.File
	begun, written atomic.Int32
}

func (f *countedFile) Write(p []byte) (int, error) {
	f.begun.Add(1)
	defer f.written.Add(1)
	return f.File.Write(p)
}

// broken reports why the connection ended; nil while it runs.
func (w *wire) broken() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// TestWireWriteEndsWithItsContext: a call whose request cannot be
// written (the upstream does not read) ends when its context ends,
// whether the pipe takes deadlines or not, and whether the context ends
// at its deadline or is cancelled before it: forwarded calls are run on
// the call's own goroutine (plugin.Tool.Bounded), which must not be held
// past its context. A cancel costs no more than it would have had the
// call waited: the connection stays up unless its deadline cuts a
// message short.
func TestWireWriteEndsWithItsContext(t *testing.T) {
	// More than a pipe holds.
	big := json.RawMessage(`{"text":"` + strings.Repeat("z", 1<<20) + `"}`)
	t.Run("pipe-without-deadlines", func(t *testing.T) {
		inR, inW := io.Pipe() // never read
		outR, outW := io.Pipe()
		defer inR.Close()
		defer outW.Close()
		w := newWire(inW, outR, slog.New(slog.DiscardHandler))
		defer w.close()
		if w.deadline != nil {
			t.Fatal("io.Pipe takes deadlines")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		within(t, func() error { _, err := w.call(ctx, "echo", big, ""); return err }, context.DeadlineExceeded)
		// The message may be half written: the connection is closed.
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection was not closed")
		}
		if _, err := w.call(t.Context(), "echo", json.RawMessage(`{}`), ""); !errors.Is(err, errBroken) {
			t.Errorf("a later call: err = %v, want the broken connection", err)
		}
	})
	t.Run("cancelled-before-the-call", func(t *testing.T) {
		// A call whose context has ended writes nothing, small or large,
		// however the wait for the write lock turns out.
		_, inW, outR, _ := pipes(t)
		in := &countedFile{File: inW}
		w := newWire(in, outR, slog.New(slog.DiscardHandler))
		defer w.close()
		parent, stop := context.WithTimeout(t.Context(), time.Hour)
		defer stop()
		ctx, cancel := context.WithCancel(parent)
		cancel()
		for i := range 100 {
			args := json.RawMessage(`{}`)
			if i%10 == 0 {
				args = big
			}
			within(t, func() error { _, err := w.call(ctx, "echo", args, ""); return err }, context.Canceled)
		}
		if n := in.begun.Load(); n != 0 {
			t.Fatalf("%d writes of calls cancelled before they began", n)
		}
	})
	t.Run("cancelled-before-anything-is-written", func(t *testing.T) {
		inR, inW, outR, outW := pipes(t)
		// Fill the pipe first, so the call's write takes nothing before
		// it is cancelled.
		inW.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		filled, err := inW.Write(big)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("filling the pipe: %v", err)
		}
		inW.SetWriteDeadline(time.Time{})
		w := newWire(inW, outR, slog.New(slog.DiscardHandler))
		defer w.close()
		if w.deadline == nil {
			t.Fatal("an os.Pipe takes no deadlines")
		}
		// The later calls have the cancelled one's deadline: each sets
		// it again in place of the past one that ended the cancelled
		// write.
		parent, stop := context.WithTimeout(t.Context(), time.Hour)
		defer stop()
		ctx, cancel := context.WithCancel(parent)
		time.AfterFunc(100*time.Millisecond, cancel)
		within(t, func() error { _, err := w.call(ctx, "echo", json.RawMessage(`{}`), ""); return err }, context.Canceled)
		if err := w.broken(); err != nil {
			t.Fatalf("the connection ended (%v): nothing of the message was written", err)
		}
		go func() {
			io.CopyN(io.Discard, inR, int64(filled))
			answerLines(inR, outW, nil)
		}()
		for range 2 {
			ctx, cancel := context.WithCancel(parent)
			within(t, func() error {
				defer cancel()
				res, err := w.call(ctx, "echo", json.RawMessage(`{}`), "")
				if err == nil && res.convert().Text != "ok" {
					err = fmt.Errorf("result %+v", res.convert())
				}
				return err
			}, nil)
		}
	})
	t.Run("cancelled-mid-message", func(t *testing.T) {
		inR, inW, outR, outW := pipes(t)
		in := &countedFile{File: inW}
		w := newWire(in, outR, slog.New(slog.DiscardHandler))
		defer w.close()
		// The upstream is busy with a first call while the second is
		// written and cancelled; then it reads on.
		seen := make(chan string, 8)
		release := make(chan struct{})
		go func() {
			<-release
			answerLines(inR, outW, seen)
		}()
		first := make(chan error, 1)
		go func() { _, err := w.call(t.Context(), "echo", json.RawMessage(`{}`), ""); first <- err }()
		// The first call's request is in the pipe before the second's.
		for deadline := time.Now().Add(10 * time.Second); in.written.Load() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the first call was not written")
			}
		}
		parent, stop := context.WithTimeout(t.Context(), time.Hour)
		defer stop()
		ctx, cancel := context.WithCancel(parent)
		// Cancelled once its write has begun (and filled the pipe).
		go func() {
			for in.begun.Load() < 2 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			cancel()
		}()
		within(t, func() error { _, err := w.call(ctx, "echo", big, ""); return err }, context.Canceled)
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("the call in flight: %v", err)
		}
		if err := w.broken(); err != nil {
			t.Fatalf("a cancel cut the connection: %v", err)
		}
		// The upstream read the cancelled request whole, then its cancel.
		var got []string
		for len(got) < 3 {
			select {
			case m := <-seen:
				got = append(got, m)
			case <-time.After(10 * time.Second):
				t.Fatalf("the upstream read %d messages, want the first call, the cancelled one and its cancel", len(got))
			}
		}
		if !strings.HasPrefix(got[1], "tools/call ") || !strings.Contains(got[1], string(big[:40])) {
			t.Errorf("second message %.80q, want the cancelled call", got[1])
		}
		if !strings.HasPrefix(got[2], "notifications/cancelled ") || !strings.Contains(got[2], `"ms-2"`) {
			t.Errorf("third message %q, want the cancel of ms-2", got[2])
		}
	})
}
