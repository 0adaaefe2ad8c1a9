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
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// noSyncAuditor is a fakeAuditor that, like a file log without fsync,
// does not sync its records: the fast lane hands calls that wait to its
// CPU workers.
type noSyncAuditor struct{ *fakeAuditor }

func (noSyncAuditor) Syncs() bool { return false }

// pipelinedServer runs a server over pipes with a log that does not
// sync, and returns the client's ends.
func pipelinedServer(t *testing.T) (in io.WriteCloser, out *bufio.Reader, aud *fakeAuditor) {
	t.Helper()
	aud = &fakeAuditor{}
	s, err := New(Options{Engine: &fakeDecider{deny: map[string]string{}}, Limiter: &fakeLimiter{limit: map[string]int{}},
		Audit: noSyncAuditor{aud}, Timeout: 10 * time.Second, Plugins: []string{"pipeline-test", "fastlane-test"}})
	if err != nil {
		t.Fatal(err)
	}
	in, out = handshaken(t, s)
	return in, out, aud
}

// answerLine is an answer as the client reads it.
type answerLine struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// TestFastLanePipelinedCalls: many calls of a Local tool in flight at
// once, with pings between them (the CPU workers, the coalesced writes):
// every request is answered exactly once, with its own result, and each
// call's two records are written before its answer is read.
func TestFastLanePipelinedCalls(t *testing.T) {
	const calls = 400
	in, out, aud := pipelinedServer(t)
	var batch bytes.Buffer
	for i := 1; i <= calls; i++ {
		if i%10 == 0 {
			fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"ping"}`+"\n", i)
			continue
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"local_echo","arguments":{"n":%d}}}`+"\n", i, i)
	}
	// In pieces, so the calls meet both a reader with more buffered and
	// one that reads them as they come.
	go func() {
		b := batch.Bytes()
		for len(b) > 0 {
			n := min(len(b), 4096)
			if _, err := in.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	seen := map[int]bool{}
	for range calls {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d answers: %v", len(seen), err)
		}
		var a answerLine
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("torn answer %q", line)
		}
		if seen[a.ID] {
			t.Fatalf("id %d answered twice", a.ID)
		}
		seen[a.ID] = true
		if a.ID%10 == 0 {
			if string(a.Result) != `{}` {
				t.Errorf("ping %d answered %s", a.ID, line)
			}
			continue
		}
		var res struct {
			Structured struct {
				RequestID string `json:"request_id"`
			} `json:"structuredContent"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if err := json.Unmarshal(a.Result, &res); err != nil || len(res.Content) != 1 {
			t.Fatalf("answer %s", line)
		}
		if res.Structured.RequestID != fmt.Sprint(a.ID) || !strings.Contains(res.Content[0].Text, fmt.Sprintf(`"n":%d`, a.ID)) {
			t.Errorf("answer to %d carries another call's result: %s", a.ID, line)
		}
		// The answer is read: both of its records must be written.
		var kinds []string
		for _, r := range aud.all() {
			if r.RequestID == fmt.Sprint(a.ID) {
				kinds = append(kinds, r.Kind)
			}
		}
		if want := []string{audit.KindToolCall, audit.KindToolResult}; fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Errorf("call %d answered with records %v, want %v", a.ID, kinds, want)
		}
	}
	if len(seen) != calls {
		t.Errorf("%d answers, want %d", len(seen), calls)
	}
}

// TestFastLaneAnswersEveryCallAtEOF: a client that writes many calls and
// closes its input gets every answer before the output ends.
func TestFastLaneAnswersEveryCallAtEOF(t *testing.T) {
	const calls = 300
	in, out, _ := pipelinedServer(t)
	go func() {
		w := bufio.NewWriter(in)
		for i := 1; i <= calls; i++ {
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"local_echo","arguments":{}}}`+"\n", i)
		}
		w.Flush()
		in.Close()
	}()
	seen := map[int]int{}
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			break
		}
		var a answerLine
		if json.Unmarshal([]byte(line), &a) != nil || a.Result == nil {
			t.Fatalf("unexpected line %q", line)
		}
		seen[a.ID]++
	}
	for i := 1; i <= calls; i++ {
		if seen[i] != 1 {
			t.Errorf("call %d answered %d times", i, seen[i])
		}
	}
}

// TestLineWriterPostAndWrite: lines posted and written from many
// goroutines at once all come out whole, in each goroutine's order, and
// every posted line is counted written once, only after it reached the
// output.
func TestLineWriterPostAndWrite(t *testing.T) {
	rec := &lineRecorder{}
	w := newLineWriter(rec)
	var mu sync.Mutex
	reported := 0
	w.written = func(n int, err error) {
		if err != nil {
			t.Error(err)
		}
		rec.mu.Lock()
		out := strings.Count(rec.buf.String(), `"posted":true`)
		rec.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		reported += n
		if reported > out {
			t.Errorf("%d posted lines counted written, %d in the output", reported, out)
		}
	}
	const writers, lines = 8, 300
	var wg sync.WaitGroup
	posts := 0
	for g := range writers {
		for i := range lines {
			if (g+i)%3 != 0 {
				posts++
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				posted := (g+i)%3 != 0
				line := fmt.Sprintf(`{"g":%d,"i":%d,"posted":%t,"pad":"%s"}`, g, i, posted, strings.Repeat("x", i%50))
				if !posted {
					if err := w.writeLine([]byte(line)); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				w.post(func(b []byte) []byte { return append(append(b, line...), '\n') })
			}
		}()
	}
	wg.Wait()
	// A post returns before its line is written; the goroutine writing
	// writes it before it returns, and every post has one.
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(rec.buf.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		var m struct{ G, I int }
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("torn line %q", l)
		}
		if m.I != next[m.G] {
			t.Fatalf("writer %d: line %d after %d", m.G, m.I, next[m.G]-1)
		}
		next[m.G]++
	}
	mu.Lock()
	defer mu.Unlock()
	if reported != posts {
		t.Errorf("%d posted lines counted written, want %d", reported, posts)
	}
	t.Logf("%d lines in %d writes", len(got), rec.writes)
}

// TestDrainWaitsForPostedAnswers: an answer posted while another write
// is under way is not yet written when post returns; the goroutine
// writing writes it next, and the transport ends at EOF only once it is
// written, not when it is handed over.
func TestDrainWaitsForPostedAnswers(t *testing.T) {
	in, inW := io.Pipe()
	out := &gatedWriter{entered: make(chan struct{}, 4), gate: make(chan struct{})}
	ended := make(chan struct{})
	tr := &StdioTransport{In: in, Out: out, DrainTimeout: 5 * time.Second, OnEnd: func() { close(ended) }}
	conn, err := tr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*stdioConn)
	go func() {
		inW.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}` + "\n" + `{"jsonrpc":"2.0","id":2,"method":"tools/list"}` + "\n"))
		inW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ids []jsonrpc.ID
	for range 2 {
		msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		ids = append(ids, msg.(*jsonrpc.Request).ID)
	}
	entered := func(what string) {
		t.Helper()
		select {
		case <-out.entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never reached the writer", what)
		}
	}
	notEnded := func(why string) {
		t.Helper()
		select {
		case <-ended:
			t.Fatalf("the transport ended while %s", why)
		case <-time.After(200 * time.Millisecond):
		}
	}
	first := make(chan struct{})
	go func() { c.post(ids[0], json.RawMessage(`{"tools":[]}`)); close(first) }()
	entered("the first answer")
	second := make(chan struct{})
	go func() { c.post(ids[1], json.RawMessage(`{"tools":[]}`)); close(second) }()
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("post waited for the write under way")
	}
	notEnded("its answers were being written")
	out.gate <- struct{}{} // the first write ends; the second begins
	entered("the posted answer")
	notEnded("the posted answer was being written")
	out.gate <- struct{}{}
	<-first
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the transport did not end after its answers were written")
	}
	if got := out.buf.String(); !strings.Contains(got, `"id":1`) || !strings.Contains(got, `"id":2`) {
		t.Errorf("output %q lacks an answer", got)
	}
}

// TestCPUWorkers: the workers run every call queued, never more at once
// than their bound; a call that finds the queue full is refused at once
// (the reader runs it); the workers leave when their context ends.
func TestCPUWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var w cpuWorkers
	w.init(ctx, 2)
	gate := make(chan struct{})
	var running, peak, ran atomic.Int32
	var wg sync.WaitGroup
	job := func(*callGroup) {
		defer wg.Done()
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-gate
		running.Add(-1)
		ran.Add(1)
	}
	// Two calls hold both workers; the queue then takes cpuQueue more.
	for range 2 {
		wg.Add(1)
		if !w.Go(job) {
			t.Fatal("an empty queue refused a call")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i := range cpuQueue {
		wg.Add(1)
		if !w.Go(job) {
			t.Fatalf("call %d refused with room in the queue", i)
		}
	}
	if w.Go(func(*callGroup) { t.Error("a refused call ran") }) {
		t.Error("a full queue took a call")
	}
	close(gate)
	wg.Wait()
	if want := int32(2 + cpuQueue); ran.Load() != want {
		t.Errorf("%d calls ran, want %d", ran.Load(), want)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("%d calls ran at once, want 2", p)
	}
	cancel()
	deadline = time.Now().Add(5 * time.Second)
	for w.running.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := w.running.Load(); n != 0 {
		t.Errorf("%d workers still running after the connection ended", n)
	}
}

// TestIDFreeOnceAnswerQueued: a client may reuse an id as soon as it has
// read its answer, so the id is free once the answer is queued, before
// the write returns; the stream still ends only after that write.
func TestIDFreeOnceAnswerQueued(t *testing.T) {
	in, inW := io.Pipe()
	out := &gatedWriter{entered: make(chan struct{}, 4), gate: make(chan struct{})}
	ended := make(chan struct{})
	tr := &StdioTransport{In: in, Out: out, DrainTimeout: 5 * time.Second, OnEnd: func() { close(ended) }}
	conn, err := tr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*stdioConn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const req = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}` + "\n"
	go inW.Write([]byte(req))
	msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	id := msg.(*jsonrpc.Request).ID
	for _, answer := range []func(){
		func() { c.post(id, json.RawMessage(`{"tools":[]}`)) },
		func() {
			c.Write(context.Background(), &jsonrpc.Response{ID: id, Result: json.RawMessage(`{"tools":[]}`)})
		},
	} {
		done := make(chan struct{})
		go func() { answer(); close(done) }()
		select {
		case <-out.entered: // the answer is being written, and held there
		case <-time.After(5 * time.Second):
			t.Fatal("the answer never reached the writer")
		}
		// The client has (as good as) read it and sends the id again.
		go inW.Write([]byte(req))
		again, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if r, ok := again.(*jsonrpc.Request); !ok || r.ID != id {
			t.Fatalf("read %v, want the request again", again)
		}
		out.gate <- struct{}{}
		<-done
	}
	inW.Close()
	go func() { c.post(id, json.RawMessage(`{"tools":[]}`)) }()
	<-out.entered
	select {
	case <-ended:
		t.Fatal("the transport ended while an answer was being written")
	case <-time.After(200 * time.Millisecond):
	}
	out.gate <- struct{}{}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the transport did not end after its answers were written")
	}
	if n := strings.Count(out.buf.String(), `"id":1`); n != 3 {
		t.Errorf("%d answers written, want 3", n)
	}
}

// handshaken runs s over in-memory pipes, answers the handshake and
// returns the client's ends; the server is stopped when the test ends.
func handshaken(t *testing.T, s *Server) (io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cIn, sOut := io.Pipe()
	sIn, cOut := io.Pipe()
	done := make(chan struct{})
	go func() { s.Run(context.Background(), sIn, sOut); sOut.Close(); close(done) }()
	t.Cleanup(func() {
		cOut.Close()
		go io.Copy(io.Discard, cIn)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	out := bufio.NewReader(cIn)
	io.WriteString(cOut, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`+"\n")
	if _, err := out.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	io.WriteString(cOut, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
	return cOut, out
}
