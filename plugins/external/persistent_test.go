package external

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// fakeLauncher starts "processes" that are goroutines running program
// over in-memory pipes.
type fakeLauncher struct {
	mu      sync.Mutex
	started int
	program func(n int, in *bufio.Reader, out io.Writer) int // returns the exit code
}

func (f *fakeLauncher) LaunchConfinement(*plugin.LaunchSpec) (string, error) { return "fake", nil }

func (f *fakeLauncher) Launch(ctx context.Context, spec *plugin.LaunchSpec) (plugin.Process, error) {
	f.mu.Lock()
	f.started++
	n := f.started
	f.mu.Unlock()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	p := &fakeProcess{in: inW, out: outR, errs: errR, done: make(chan struct{}), pid: n}
	killed := make(chan struct{})
	p.kill = sync.OnceFunc(func() { close(killed) })
	code := make(chan int, 1)
	go func() { code <- f.program(n, bufio.NewReader(inR), outW) }()
	go func() {
		select {
		case p.code = <-code:
		case <-killed:
			p.code = 137
		case <-ctx.Done():
			p.code = 137
		}
		inR.CloseWithError(io.ErrClosedPipe)
		outW.Close()
		errW.Close()
		close(p.done)
	}()
	return p, nil
}

type fakeProcess struct {
	in        *io.PipeWriter
	out, errs *io.PipeReader
	done      chan struct{}
	code, pid int
	kill      func()
}

func (p *fakeProcess) Stdin() io.WriteCloser { return p.in }
func (p *fakeProcess) Stdout() io.ReadCloser { return p.out }
func (p *fakeProcess) Stderr() io.ReadCloser { return p.errs }
func (p *fakeProcess) Wait() (int, error)    { <-p.done; return p.code, nil }
func (p *fakeProcess) Kill()                 { p.kill() }
func (p *fakeProcess) Pid() int              { return p.pid }

// echoProgram answers each request with its process number, and
// misbehaves when the tool says so.
func echoProgram(n int, in *bufio.Reader, out io.Writer) int {
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return 0
		}
		var req request
		json.Unmarshal(line, &req)
		switch req.Tool {
		case "crash":
			return 139
		case "hang":
			select {}
		case "garbage":
			fmt.Fprintln(out, "garbage")
			continue
		case "twice": // a late second answer, with the request's id
			fmt.Fprintf(out, `{"id":%d,"content":[{"type":"text","text":"%d"}]}`+"\n", req.ID, n)
		case "twice-no-id":
			fmt.Fprintf(out, `{"content":[{"type":"text","text":"%d"}]}`+"\n", n)
			fmt.Fprintf(out, `{"content":[{"type":"text","text":"%d"}]}`+"\n", n)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		fmt.Fprintf(out, `{"id":%d,"content":[{"type":"text","text":"%d"}]}`+"\n", req.ID, n)
	}
}

func TestPersistent(t *testing.T) {
	f := &fakeLauncher{program: echoProgram}
	m := &Manifest{Name: "fake", Mode: ModePersistent}
	p := newPersistent(m, f, slog.New(slog.DiscardHandler))
	defer p.close()
	callTool := func(tool string, timeout time.Duration) (*plugin.Result, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		return p.run(ctx, &plugin.Call{Tool: tool, Arguments: json.RawMessage(`{}`)})
	}
	want := func(tool, text string, isError bool) {
		t.Helper()
		r, err := callTool(tool, 5*time.Second)
		if err != nil || r.IsError != isError || !strings.Contains(r.Text, text) {
			t.Fatalf("%s: got %v %v, want %q (error %v)", tool, r, err, text, isError)
		}
	}
	want("echo", "1", false)
	want("echo", "1", false) // the same process
	want("crash", "killed by signal 11", true)
	start := time.Now()
	want("echo", "2", false) // restarted, after the backoff
	if took := time.Since(start); took < minBackoff/2 {
		t.Errorf("restarted after %v, before the backoff", took)
	}
	want("garbage", "invalid output", true)
	want("echo", "3", false)
	if _, err := callTool("hang", 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("hang: %v", err)
	}
	want("echo", "4", false) // a timeout drops the process, without backoff
	want("twice", "4", false)
	want("echo", "4", false) // the late answer carried an old id: skipped
	want("twice-no-id", "4", false)
	// Without ids, a late line is caught only if it came before the next
	// request: wait for it.
	for i := 0; i < 200 && len(p.cur.lines) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	want("echo", "5", false) // an extra answer without id: restarted
	p.close()
	if r, err := callTool("echo", time.Second); err == nil {
		t.Fatalf("call after close: %v", r)
	}
}

func TestPersistentBackoffGrows(t *testing.T) {
	p := &persistent{}
	var last time.Duration
	for i := range 12 {
		p.failLocked()
		d := time.Until(p.notUntil)
		if d > maxBackoff || (i > 0 && d+10*time.Millisecond < last && last < maxBackoff) {
			t.Fatalf("failure %d: backoff %v after %v", i+1, d, last)
		}
		last = d
	}
	if last < maxBackoff-time.Second {
		t.Errorf("backoff tops out at %v, want %v", last, maxBackoff)
	}
}
