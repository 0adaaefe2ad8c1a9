//go:build linux

package sandbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Cmd is a target being prepared or run in the sandbox. Set Stdin, Stdout
// and Stderr (or take pipes) before Start.
type Cmd struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// WaitDelay bounds how long Wait waits, once ctx is done, for the tree
	// to go and for the output pipes to close; 0 means 2 s.
	WaitDelay time.Duration

	target Target
	ctx    context.Context
	cmd    *exec.Cmd
	// setup is what the launcher reported instead of starting the
	// target: a failure to set the sandbox up, or nothing.
	setup []byte
	// started: the launcher reported the target started; pending holds
	// what it reported after that and Wait has not read yet.
	started bool
	pending []byte
	// exit is the target's status when the launcher reported it and Wait
	// returned before the launcher exited; -1 otherwise.
	exit     int
	ctl      *os.File // the write end of the control pipe: closing it ends the tree
	report   *os.File
	closeCtl func()

	// piped: the target's standard streams are pipes (see Piped), and
	// the launcher may be one started ahead of time.
	piped         bool
	launcher      launcherExe
	in, out, errs *os.File // the server's ends of those pipes
	// Of a launcher started ahead: stopping the cancellation that
	// follows ctx, and the launcher's own context.
	stopAfter func() bool
	cancel    context.CancelFunc
}

// Command prepares t to run in the sandbox. When ctx is done the whole
// tree of the target is killed.
func Command(ctx context.Context, t Target) *Cmd { return commandWith(ctx, t, theLauncher()) }

// commandWith is Command started through launcher l.
func commandWith(ctx context.Context, t Target, l launcherExe) *Cmd {
	c := &Cmd{target: t, ctx: ctx, cmd: launcherCmd(ctx, l, t.Rules.AllowUDP), exit: -1}
	c.cmd.Cancel = func() error {
		c.closeCtl()
		return nil
	}
	c.closeCtl = func() {}
	return c
}

// launcherCmd is the command that starts launcher l, for a target whose
// rules allow UDP or not: the launcher installs its socket filter while
// it waits for the target.
func launcherCmd(ctx context.Context, l launcherExe, udp bool) *exec.Cmd {
	cmd := exec.CommandContext(ctx, l.path)
	cmd.Args = []string{l.argv0, launcherArg, launcherProtocol, filterArg(udp)}
	cmd.Env = launcherEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	return cmd
}

// Piped prepares t like Command, with pipes as the target's standard
// input, output and error: after Start, [Cmd.Pipes] hands out the
// server's ends. Set no Stdin, Stdout or Stderr.
//
// A piped target may start through a launcher started ahead of it, which
// takes the launcher's own start-up (a Go runtime's, some milliseconds)
// off the call's path: the launcher waits for its target on the control
// pipe and does nothing before it has it. Two such launchers wait; after
// each piped target is done, another is started for a later call.
func Piped(ctx context.Context, t Target) *Cmd {
	return &Cmd{target: t, ctx: ctx, piped: true, launcher: theLauncher(), closeCtl: func() {}, exit: -1}
}

// Pipes returns the server's ends of a piped target's standard input,
// output and error after a successful Start; the caller closes them.
func (c *Cmd) Pipes() (stdin, stdout, stderr *os.File) { return c.in, c.out, c.errs }

// StdinPipe returns a pipe to the target's standard input.
func (c *Cmd) StdinPipe() (io.WriteCloser, error) { return c.cmd.StdinPipe() }

// StdoutPipe returns a pipe from the target's standard output.
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) { return c.cmd.StdoutPipe() }

// StderrPipe returns a pipe from the target's standard error.
func (c *Cmd) StderrPipe() (io.ReadCloser, error) { return c.cmd.StderrPipe() }

// Start starts the launcher and hands it the target.
func (c *Cmd) Start() error {
	t := c.target
	if !strings.HasPrefix(t.Path, "/") || len(t.Args) == 0 {
		return fmt.Errorf("sandbox: target %q: want an absolute path and argv", t.Path)
	}
	if !t.Unconfined {
		if s := Probe(); !s.Confines() {
			return fmt.Errorf("%w: %s", ErrUnavailable, s.Reason)
		}
	}
	if c.piped && (c.Stdin != nil || c.Stdout != nil || c.Stderr != nil) {
		return errors.New("sandbox: a piped target takes no Stdin, Stdout or Stderr")
	}
	if !c.piped {
		if c.cmd.Stdin == nil {
			c.cmd.Stdin = c.Stdin
		}
		if c.cmd.Stdout == nil {
			c.cmd.Stdout = c.Stdout
		}
		if c.cmd.Stderr == nil {
			c.cmd.Stderr = c.Stderr
		}
		c.cmd.WaitDelay = c.waitDelay()
	}
	spec, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(spec)))
	msg = append(msg, spec...)
	// A launcher spends milliseconds of CPU starting (tens of them when it
	// is this whole binary re-executed) before it starts the target.
	// Launches start a few at a time, so that a burst of them cannot
	// starve the server, whose policy decisions have deadlines: each holds
	// a slot until its launcher has started the target or failed.
	select {
	case launchSlots <- struct{}{}:
	case <-c.ctx.Done():
		return fmt.Errorf("sandbox: %w", context.Cause(c.ctx))
	}
	defer func() { <-launchSlots }()
	if c.piped {
		return c.startPiped(msg)
	}
	ctlW, repR, err := startLauncher(c.cmd, func(f func()) { c.closeCtl = f })
	if err != nil {
		return err
	}
	c.ctl, c.report = ctlW, repR
	return c.handOver(msg)
}

// startLauncher starts cmd, a launcher, with the control and report
// pipes, and returns the server's ends. setClose is given the function
// that closes the control pipe (once) before cmd starts: cmd's Cancel,
// which may run as soon as it has started, calls it.
func startLauncher(cmd *exec.Cmd, setClose func(func())) (ctl, report *os.File, err error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	closeCtl := sync.OnceFunc(func() { ctlW.Close() })
	setClose(closeCtl)
	cmd.ExtraFiles = []*os.File{ctlR, repW}
	err = startChild(cmd)
	ctlR.Close()
	repW.Close()
	if err != nil {
		closeCtl()
		repR.Close()
		return nil, nil, fmt.Errorf("sandbox: starting the launcher: %w", err)
	}
	return ctlW, repR, nil
}

// handOver writes msg, the target, to the started launcher and waits
// until it has started the target or said why it could not.
func (c *Cmd) handOver(msg []byte) error {
	if _, err := c.ctl.Write(msg); err != nil {
		c.closeCtl()
		waitChild(c.cmd)
		// A launcher that failed before it read the target said why.
		c.report.SetReadDeadline(time.Now().Add(time.Second))
		why, _ := io.ReadAll(io.LimitReader(c.report, 4096))
		c.report.Close()
		for _, f := range []*os.File{c.in, c.out, c.errs} {
			if f != nil {
				f.Close()
			}
		}
		if c.cancel != nil {
			c.stopAfter()
			c.cancel()
		}
		if len(why) > 0 {
			return &SetupError{Msg: strings.TrimSpace(string(why))}
		}
		return fmt.Errorf("sandbox: handing the target to the launcher: %w", err)
	}
	return c.awaitTarget()
}

// awaitTarget waits until the launcher, which has the target, has
// started it or said why it could not.
func (c *Cmd) awaitTarget() error {
	// The launcher reports the target started, or writes why it could
	// not start it and exits; a launcher killed with ctx closes the pipe.
	// The deadline is a backstop.
	c.report.SetReadDeadline(time.Now().Add(launchWait))
	buf := make([]byte, 64)
	n, err := c.report.Read(buf)
	if n > 0 && buf[0] == reportStarted {
		c.started, c.pending = true, buf[1:n]
		c.report.SetReadDeadline(time.Time{})
		return nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		// A failure (or nothing: the launcher died), which Wait returns.
		rest, rerr := io.ReadAll(io.LimitReader(c.report, 4096))
		if !errors.Is(rerr, os.ErrDeadlineExceeded) {
			c.setup = append(buf[:n], rest...)
			return nil
		}
	}
	// A launcher alive but stuck (stopped, say): nothing started. It
	// and its group are killed, and the start fails.
	c.closeCtl()
	if p := c.cmd.Process; p != nil {
		syscall.Kill(-p.Pid, syscall.SIGKILL)
		p.Kill()
	}
	waitChild(c.cmd)
	c.report.Close()
	for _, f := range []*os.File{c.in, c.out, c.errs} {
		if f != nil {
			f.Close()
		}
	}
	if c.cancel != nil {
		c.stopAfter()
		c.cancel()
	}
	return fmt.Errorf("sandbox: the launcher did not start its target within %v", launchWait)
}

// launchSlots bounds the launchers starting at once.
var launchSlots = make(chan struct{}, max(2, runtime.NumCPU()))

// launchWait bounds how long Start waits for a launcher to start its
// target.
var launchWait = 30 * time.Second

// Wait waits for the target and everything it started to be gone. A
// failure to set the sandbox up is a *SetupError; a non-zero exit is an
// *exec.ExitError.
//
// A piped target that exits 0 is done as soon as the launcher reports
// it and the rest of its tree gone; the launcher's own exit, and
// reaping it, happen after Wait returns.
func (c *Cmd) Wait() error {
	if c.report == nil {
		return fmt.Errorf("sandbox: Wait without a successful Start")
	}
	if c.piped && c.started {
		if code, ok := c.readExit(); ok && code == 0 && c.ctx.Err() == nil {
			c.exit = 0
			go refill(c.launcher, c.target.Rules.AllowUDP)
			go c.finish()
			return nil
		}
	}
	err := waitChild(c.cmd)
	c.closeCtl()
	if c.piped && len(c.setup) == 0 {
		// The next warm launcher starts once this tree is gone, not
		// while the target runs: on a busy machine its start-up would
		// take CPU from the target, which runs at a lower priority.
		go refill(c.launcher, c.target.Rules.AllowUDP)
	}
	if c.cancel != nil { // a launcher started ahead, on a context of its own
		c.stopAfter()
		c.cancel()
		if errors.Is(err, context.Canceled) && c.ctx.Err() != nil {
			err = c.ctx.Err()
		}
	}
	// A launcher killed took its group with it (waitChild).
	c.report.SetReadDeadline(time.Now().Add(time.Second))
	msg, _ := io.ReadAll(io.LimitReader(c.report, 4096))
	c.report.Close()
	if !c.started && len(c.setup)+len(msg) > 0 {
		// After the target started, the report holds only its status.
		return &SetupError{Msg: strings.TrimSpace(string(append(c.setup, msg...)))}
	}
	return err
}

// readExit reads the target's exit status from the report pipe: ok is
// false when the launcher ended without reporting it.
func (c *Cmd) readExit() (code int, ok bool) {
	buf := c.pending
	for len(buf) < 2 {
		var b [2]byte
		n, err := c.report.Read(b[:2-len(buf)])
		buf = append(buf, b[:n]...)
		if err != nil {
			break
		}
	}
	c.pending = nil
	if len(buf) < 2 || buf[0] != reportExited {
		return 0, false
	}
	return int(buf[1]), true
}

// finish reaps the launcher of a target that Wait found done, and
// releases what the call held.
func (c *Cmd) finish() {
	waitChild(c.cmd)
	c.closeCtl()
	if c.cancel != nil {
		c.stopAfter()
		c.cancel()
	}
	c.report.Close()
}

// ExitCode is the target's exit status after Wait: 128+n when it was
// killed by signal n, -1 when it did not run.
func (c *Cmd) ExitCode() int {
	if c.exit >= 0 {
		return c.exit
	}
	if c.cmd.ProcessState == nil {
		return -1
	}
	return c.cmd.ProcessState.ExitCode()
}

// launcherEnv is the launcher's whole environment. One P is all a
// launcher needs (its threads mostly wait): with one, its runtime sets up
// less and starts fewer threads. The target gets only the environment of
// its Target.
var launcherEnv = []string{"GOMAXPROCS=1"}

func (c *Cmd) waitDelay() time.Duration {
	if c.WaitDelay <= 0 {
		return 2 * time.Second
	}
	return c.WaitDelay
}

// A warm launcher was started ahead of the call that takes it: it waits
// for its target on the control pipe, with fresh pipes as its standard
// streams, and its socket filter installed for targets that may use UDP
// or not. Its context is its own; the call's, when done, cancels it.
type warmLauncher struct {
	l             launcherExe
	udp           bool
	cmd           *exec.Cmd
	cancel        context.CancelFunc
	ctl, report   *os.File
	closeCtl      func()
	in, out, errs *os.File
}

// warmLaunchers is how many launchers wait for piped targets. With two,
// the one a call takes was started before the previous call ended, and
// has long finished starting: one started when the previous call ended
// may still be starting (tens of milliseconds of CPU on a busy machine)
// when the next call comes.
const warmLaunchers = 2

// warm holds the launchers started for the next piped targets, oldest
// first.
var (
	warm      = make(chan *warmLauncher, warmLaunchers)
	refilling atomic.Bool
)

// startWarm starts launcher l with pipes as its standard streams, for a
// target whose rules allow UDP or not.
func startWarm(l launcherExe, udp bool) (*warmLauncher, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &warmLauncher{l: l, udp: udp, cmd: launcherCmd(ctx, l, udp), cancel: cancel, closeCtl: func() {}}
	w.cmd.Cancel = func() error {
		w.closeCtl()
		return nil
	}
	var child []*os.File
	pipe := func() (r, wr *os.File) {
		r, wr, err := os.Pipe()
		if err == nil {
			child = append(child, r, wr)
		}
		return r, wr
	}
	inR, inW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	if len(child) != 6 {
		for _, f := range child {
			f.Close()
		}
		cancel()
		return nil, errors.New("sandbox: cannot make the target's pipes")
	}
	w.cmd.Stdin, w.cmd.Stdout, w.cmd.Stderr = inR, outW, errW
	ctl, report, err := startLauncher(w.cmd, func(f func()) { w.closeCtl = f })
	inR.Close() // the launcher holds its own copies
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		cancel()
		return nil, err
	}
	w.ctl, w.report = ctl, report
	w.in, w.out, w.errs = inW, outR, errR
	return w, nil
}

// discard ends a warm launcher that will not be used: it reads EOF for
// its target and exits.
func (w *warmLauncher) discard() {
	w.closeCtl()
	w.in.Close()
	w.out.Close()
	w.errs.Close()
	go func() {
		waitChild(w.cmd)
		w.report.Close()
		w.cancel()
	}()
}

// takeWarm returns a warm launcher of l for a target that allows UDP or
// not, if one is ready. Those of another kind (the policy changed) ahead
// of it end.
func takeWarm(l launcherExe, udp bool) *warmLauncher {
	for {
		select {
		case w := <-warm:
			if w.l == l && w.udp == udp {
				return w
			}
			w.discard()
		default:
			return nil
		}
	}
}

// refill starts warm launchers for the next piped targets, one at a
// time, until warmLaunchers are waiting, unless another refill is under
// way. They are for targets that allow UDP or not, as the last one.
func refill(l launcherExe, udp bool) {
	if len(warm) >= warmLaunchers || !refilling.CompareAndSwap(false, true) {
		return
	}
	defer refilling.Store(false)
	for len(warm) < warmLaunchers {
		launchSlots <- struct{}{}
		w, err := startWarm(l, udp)
		<-launchSlots
		if err != nil {
			return
		}
		select {
		case warm <- w:
		default:
			w.discard()
			return
		}
	}
}

// startPiped hands the target (msg) to a warm launcher, or to one started
// now when none is ready or the ready one has died, and starts the next
// warm launcher in the background.
func (c *Cmd) startPiped(msg []byte) (err error) {
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("sandbox: %w", context.Cause(c.ctx))
	}
	// The next warm launcher starts when this target is done (see
	// Wait), or now if it does not start.
	defer func() {
		if err != nil || len(c.setup) > 0 {
			go refill(c.launcher, c.target.Rules.AllowUDP)
		}
	}()
	var w *warmLauncher
	for range warmLaunchers {
		if w = takeWarm(c.launcher, c.target.Rules.AllowUDP); w == nil {
			break
		}
		if _, err := w.ctl.Write(msg); err == nil {
			break
		}
		// It died while it waited (killed from outside): take the next,
		// or start one.
		w.discard()
		w = nil
	}
	fresh := w == nil
	if fresh {
		var err error
		if w, err = startWarm(c.launcher, c.target.Rules.AllowUDP); err != nil {
			return err
		}
	}
	c.cmd, c.cancel = w.cmd, w.cancel
	c.ctl, c.report, c.closeCtl = w.ctl, w.report, w.closeCtl
	c.in, c.out, c.errs = w.in, w.out, w.errs
	c.cmd.WaitDelay = c.waitDelay()
	// From here the call's context ends the launcher and its tree, as
	// it does a launcher started with it.
	c.stopAfter = context.AfterFunc(c.ctx, w.cancel)
	if fresh {
		return c.handOver(msg)
	}
	return c.awaitTarget()
}
