package external

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Restart backoff of a persistent process that ended: the first restart
// waits minBackoff, each further one twice as long, up to maxBackoff; a
// call that succeeds resets it.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// maxStderrLog bounds what one persistent process may write to the
// server's log in all.
const maxStderrLog = 1 << 20

// persistent keeps one process of the plugin for all its calls: one
// request a line on its stdin, one answer a line on its stdout, one call
// at a time.
type persistent struct {
	m        *Manifest
	launcher plugin.Launcher
	log      *slog.Logger
	// now and sleep are the clock of the restart backoff: the system's,
	// unless a test fakes them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	turn chan struct{} // holds a token while a call talks to the process

	mu       sync.Mutex // guards the fields below
	cur      *child
	failures int
	notUntil time.Time
	lastID   uint64
	closed   bool
}

// child is one running process.
type child struct {
	proc  plugin.Process
	lines chan line     // answers read from stdout
	gone  chan struct{} // closed once the process tree is gone
	code  int           // exit code, once gone
	err   error         // why it could not be waited for normally, once gone

	quit     chan struct{} // closed when the process is dropped: nobody reads lines
	quitOnce sync.Once
}

// stop kills the process and stops its reader.
func (c *child) stop() {
	c.quitOnce.Do(func() { close(c.quit) })
	c.proc.Kill()
}

// send hands a line to the call waiting for it, unless c was dropped.
func (c *child) send(l line) bool {
	select {
	case c.lines <- l:
		return true
	case <-c.quit:
		return false
	}
}

type line struct {
	data []byte
	err  error
}

// errTooLong is a line of output over MaxOutput.
var errTooLong = errors.New("answer longer than 1 MiB")

func newPersistent(m *Manifest, l plugin.Launcher, log *slog.Logger) *persistent {
	p := &persistent{m: m, launcher: l, log: log, now: time.Now, sleep: sleep, turn: make(chan struct{}, 1)}
	return p
}

// sleep waits for d, or until ctx ends, with the cause.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (p *persistent) run(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	if p.launcher == nil {
		return nil, errors.New("external plugins cannot be started: the server has no launcher")
	}
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("external tool %s: waiting for its process: %w", call.Tool, context.Cause(ctx))
	}
	defer func() { <-p.turn }()
	c, err := p.child(ctx)
	if err != nil {
		return nil, err
	}
	if p.outOfTurn(c) {
		// Output nobody asked for that no id explains (or the end of
		// output): the process is out of step with its calls; start
		// afresh. Without ids this is best effort: a late line may also
		// come after the next request was written.
		p.log.Warn("external plugin process wrote out of turn; restarting it", "plugin", p.m.Name)
		p.drop(c, true)
		if c, err = p.child(ctx); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	p.lastID++
	id := p.lastID
	p.mu.Unlock()
	req, err := encodeRequest(call, id)
	if err != nil {
		return nil, err
	}
	// A process that stops reading must not hold the call: the write
	// fails once the process is killed.
	go c.proc.Stdin().Write(append(req, '\n'))
	for {
		res, again, err := p.await(ctx, c, call.Tool, id)
		if !again {
			return res, err
		}
	}
}

// outOfTurn reads what c wrote while no call was waiting: late answers
// that carry the id of an earlier request are dropped; anything else
// means c is out of step.
func (p *persistent) outOfTurn(c *child) bool {
	for {
		select {
		case l := <-c.lines:
			if l.err != nil {
				return true
			}
			_, got, err := decodeAnswer(l.data)
			p.mu.Lock()
			late := err == nil && got != nil && *got <= p.lastID
			p.mu.Unlock()
			if !late {
				return true
			}
		default:
			return false
		}
	}
}

// await reads c's answer to request id; again says the line was a late
// answer to an earlier request, to be skipped.
func (p *persistent) await(ctx context.Context, c *child, tool string, id uint64) (res *plugin.Result, again bool, err error) {
	select {
	case l := <-c.lines:
		switch {
		case errors.Is(l.err, errTooLong):
			p.drop(c, true)
			return plugin.Errorf("external tool %s answered more than %d bytes (the limit is 1 MiB); its process is restarted", tool, MaxOutput), false, nil
		case l.err != nil: // the process ended, or closed its stdout
			p.drop(c, true)
			select {
			case <-c.gone:
				return p.ended(tool, c.code, c.err), false, nil
			case <-ctx.Done():
				return nil, false, fmt.Errorf("external tool %s: %w", tool, context.Cause(ctx))
			}
		}
		res, got, err := decodeAnswer(l.data)
		switch {
		case err != nil:
			p.drop(c, true)
			return plugin.Errorf("external tool %s: %v; its process is restarted", tool, err), false, nil
		case got != nil && *got < id:
			p.log.Warn("external plugin answered an abandoned call late; skipped", "plugin", p.m.Name, "id", *got)
			return nil, true, nil
		case got != nil && *got != id:
			p.drop(c, true)
			return plugin.Errorf("external tool %s: the answer carries id %d, not %d; its process is restarted", tool, *got, id), false, nil
		}
		p.succeeded()
		return res, false, nil
	case <-ctx.Done():
		// The answer may still come, out of turn: start afresh.
		p.drop(c, false)
		return nil, false, fmt.Errorf("external tool %s: %w", tool, context.Cause(ctx))
	}
}

func (p *persistent) ended(tool string, code int, err error) *plugin.Result {
	if err != nil {
		return plugin.Errorf("external tool %s: its process (plugin %s) ended: %v; it is restarted on the next call", tool, p.m.Name, err)
	}
	if code > 128 {
		return plugin.Errorf("external tool %s crashed: its process (plugin %s) was killed by signal %d; it is restarted on the next call", tool, p.m.Name, code-128)
	}
	return plugin.Errorf("external tool %s failed: its process (plugin %s) exited with status %d; it is restarted on the next call", tool, p.m.Name, code)
}

// child returns the running process, starting one (after the backoff,
// when the last one failed) if there is none.
func (p *persistent) child(ctx context.Context) (*child, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("the server is shutting down")
	}
	if c := p.cur; c != nil {
		select {
		case <-c.gone:
			p.cur = nil
			p.failLocked()
		default:
			p.mu.Unlock()
			return c, nil
		}
	}
	wait := p.notUntil.Sub(p.now())
	p.mu.Unlock()
	if wait > 0 {
		if err := p.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("plugin %s is restarting: %w", p.m.Name, err)
		}
	}
	// The process outlives this call; it keeps the call's values so its
	// start is audited with the call that caused it.
	proc, err := p.launcher.Launch(context.WithoutCancel(ctx), p.m.LaunchSpec(os.LookupEnv))
	if err != nil {
		p.mu.Lock()
		p.failLocked()
		p.mu.Unlock()
		return nil, err
	}
	c := &child{proc: proc, lines: make(chan line, 1), gone: make(chan struct{}), quit: make(chan struct{})}
	go c.readLines()
	go p.readStderr(proc.Stderr())
	go func() {
		code, err := proc.Wait()
		// Cancelled is stopped by the server (its end, a restart).
		if err != nil && !errors.Is(err, context.Canceled) {
			p.log.Error("external plugin process failed", "plugin", p.m.Name, "err", err)
		}
		c.code, c.err = code, err
		close(c.gone)
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.stop()
		return nil, errors.New("the server is shutting down")
	}
	p.cur = c
	p.log.Info("external plugin process started", "plugin", p.m.Name, "pid", proc.Pid())
	return c, nil
}

// readLines hands each line of stdout to the calls, until EOF.
func (c *child) readLines() {
	defer close(c.lines)
	r := bufio.NewReaderSize(c.proc.Stdout(), 64<<10)
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxOutput+1 {
			c.proc.Kill()
			c.send(line{err: errTooLong})
			io.Copy(io.Discard, r)
			return
		}
		buf = append(buf, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			c.send(line{err: fmt.Errorf("output ended: %w", err)})
			return
		}
		if len(bytes.TrimSpace(buf)) > 0 && !c.send(line{data: buf}) {
			return
		}
		buf = nil
	}
}

// readStderr logs the process's stderr a line at a time, capped.
func (p *persistent) readStderr(r io.Reader) {
	br := bufio.NewReaderSize(r, maxStderr)
	total := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 && total < maxStderrLog {
			total += len(chunk)
			p.log.Warn("external plugin wrote to stderr", "plugin", p.m.Name, "stderr", string(bytes.TrimRight(chunk, "\n")))
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// drop kills c and forgets it; failed counts towards the backoff.
func (p *persistent) drop(c *child, failed bool) {
	c.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == c {
		p.cur = nil
		if failed {
			p.failLocked()
		}
	}
}

func (p *persistent) failLocked() {
	p.failures++
	d := minBackoff << min(p.failures-1, 10)
	p.notUntil = p.now().Add(min(d, maxBackoff))
}

func (p *persistent) succeeded() {
	p.mu.Lock()
	p.failures = 0
	p.mu.Unlock()
}

func (p *persistent) close() {
	p.mu.Lock()
	p.closed = true
	c := p.cur
	p.cur = nil
	p.mu.Unlock()
	if c != nil {
		c.proc.Stdin().Close()
		c.stop()
		select {
		case <-c.gone:
		case <-time.After(5 * time.Second):
		}
	}
}
