package external

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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

// echoProgram answers each request with its tool and process number
// ("echo:3"), and misbehaves when the tool says so.
func echoProgram(n int, in *bufio.Reader, out io.Writer) int {
	var stale uint64 // an id to answer again, late, before the next answer
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return 0
		}
		var req request
		json.Unmarshal(line, &req)
		if stale != 0 {
			// The late answer comes after the next request was read.
			fmt.Fprintf(out, `{"id":%d,"content":[{"type":"text","text":"late:%d"}]}`+"\n", stale, n)
			stale = 0
		}
		switch req.Tool {
		case "crash":
			return 139
		case "hang":
			select {}
		case "garbage":
			fmt.Fprintln(out, "garbage")
			continue
		case "twice": // a late second answer, with the request's id
			fmt.Fprintf(out, `{"id":%d,"content":[{"type":"text","text":"%s:%d"}]}`+"\n", req.ID, req.Tool, n)
		case "late":
			stale = req.ID
		case "twice-no-id":
			fmt.Fprintf(out, `{"content":[{"type":"text","text":"%s:%d"}]}`+"\n", req.Tool, n)
			fmt.Fprintf(out, `{"content":[{"type":"text","text":"%s:%d"}]}`+"\n", req.Tool, n)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		fmt.Fprintf(out, `{"id":%d,"content":[{"type":"text","text":"%s:%d"}]}`+"\n", req.ID, req.Tool, n)
	}
}

// backoffClock is the restart backoff's clock in tests: a sleep is
// noted and moves the clock on at once.
type backoffClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func newBackoffClock(p *persistent) *backoffClock {
	c := &backoffClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	p.now, p.sleep = c.now, c.sleep
	return c
}

func (c *backoffClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *backoffClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return nil
}

// took returns the sleeps since the last call.
func (c *backoffClock) took() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slept
	c.slept = nil
	return s
}

func TestPersistent(t *testing.T) {
	f := &fakeLauncher{program: echoProgram}
	m := &Manifest{Name: "fake", Mode: ModePersistent}
	p := newPersistent(m, f, slog.New(slog.DiscardHandler))
	clock := newBackoffClock(p)
	defer p.close()
	callTool := func(tool string, timeout time.Duration) (*plugin.Result, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		return p.run(ctx, &plugin.Call{Tool: tool, Arguments: json.RawMessage(`{}`)})
	}
	want := func(tool, text string, isError bool) {
		t.Helper()
		r, err := callTool(tool, 5*time.Second)
		if !isError {
			text = tool + ":" + text // the answer to this call, not another's
		}
		if err != nil || r.IsError != isError || !strings.Contains(r.Text, text) {
			t.Fatalf("%s: got %v %v, want %q (error %v)", tool, r, err, text, isError)
		}
	}
	// waited checks the backoff the calls since the last check slept.
	waited := func(what string, want ...time.Duration) {
		t.Helper()
		if got := clock.took(); !slices.Equal(got, want) {
			t.Errorf("%s: waited %v, want %v", what, got, want)
		}
	}
	want("echo", "1", false)
	want("echo", "1", false) // the same process
	waited("first start")
	want("crash", "killed by signal 11", true)
	want("echo", "2", false) // restarted, after the backoff
	waited("restart after a crash", minBackoff)
	want("garbage", "invalid output", true)
	want("echo", "3", false)
	waited("restart after invalid output (the success before reset the backoff)", minBackoff)
	if _, err := callTool("hang", 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("hang: %v", err)
	}
	want("echo", "4", false) // a timeout drops the process, without backoff
	waited("restart after a timeout")
	want("twice", "4", false)
	want("echo", "4", false) // the late answer carried an old id: skipped
	want("late", "4", false)
	// Its late answer comes once this call's request was read, before its
	// answer: skipped by its old id, and the process kept.
	want("echo", "4", false)
	want("twice-no-id", "4", false)
	// Without ids, a late line is caught only if it came before the next
	// request: wait for it.
	for i := 0; i < 200 && len(p.cur.lines) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	want("echo", "5", false) // an extra answer without id: restarted
	waited("restart after output out of turn", minBackoff)
	p.close()
	if r, err := callTool("echo", time.Second); err == nil {
		t.Fatalf("call after close: %v", r)
	}
}

func TestPersistentBackoffGrows(t *testing.T) {
	p := &persistent{}
	clock := newBackoffClock(p)
	var got []time.Duration
	for range 12 {
		p.failLocked()
		got = append(got, p.notUntil.Sub(clock.now()))
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, maxBackoff, maxBackoff, maxBackoff, maxBackoff, maxBackoff, maxBackoff}
	if !slices.Equal(got, want) {
		t.Errorf("backoffs %v, want %v", got, want)
	}
	p.succeeded()
	p.failLocked()
	if d := p.notUntil.Sub(clock.now()); d != minBackoff {
		t.Errorf("after a success, backoff %v, want %v", d, minBackoff)
	}
}

// A call whose context ends during the restart backoff fails with the
// context's cause and starts no process; the real sleep returns the cause
// of an ended context at once.
func TestPersistentBackoffCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("the client went away")
	cancel(cause)
	if err := sleep(ctx, time.Hour); err != cause {
		t.Errorf("sleep on an ended context: %v, want %v", err, cause)
	}
	f := &fakeLauncher{program: echoProgram}
	p := newPersistent(&Manifest{Name: "fake", Mode: ModePersistent}, f, slog.New(slog.DiscardHandler))
	defer p.close()
	clock := newBackoffClock(p)
	p.sleep = func(ctx context.Context, d time.Duration) error {
		clock.sleep(ctx, d)
		return cause
	}
	p.mu.Lock()
	p.failLocked()
	p.mu.Unlock()
	_, err := p.run(t.Context(), &plugin.Call{Tool: "echo", Arguments: json.RawMessage(`{}`)})
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "plugin fake is restarting") {
		t.Errorf("call during the backoff: %v", err)
	}
	if got := clock.took(); !slices.Equal(got, []time.Duration{minBackoff}) {
		t.Errorf("slept %v, want [%v]", got, minBackoff)
	}
	if f.started != 0 {
		t.Errorf("%d processes started during the backoff", f.started)
	}
}
