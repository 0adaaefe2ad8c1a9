//go:build linux

package sandbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
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
	// setup is what the launcher reported before the target started: a
	// failure to set the sandbox up, or nothing.
	setup    []byte
	ctl      *os.File // the write end of the control pipe: closing it ends the tree
	report   *os.File
	closeCtl func()
}

// Command prepares t to run in the sandbox. When ctx is done the whole
// tree of the target is killed.
func Command(ctx context.Context, t Target) *Cmd { return commandWith(ctx, t, theLauncher()) }

// commandWith is Command started through launcher l.
func commandWith(ctx context.Context, t Target, l launcherExe) *Cmd {
	c := &Cmd{target: t, ctx: ctx, cmd: exec.CommandContext(ctx, l.path)}
	c.cmd.Args = []string{l.argv0, launcherArg, launcherProtocol}
	c.cmd.Env = launcherEnv
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	c.cmd.Cancel = func() error {
		c.closeCtl()
		return nil
	}
	c.closeCtl = func() {}
	return c
}

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
	if c.cmd.Stdin == nil {
		c.cmd.Stdin = c.Stdin
	}
	if c.cmd.Stdout == nil {
		c.cmd.Stdout = c.Stdout
	}
	if c.cmd.Stderr == nil {
		c.cmd.Stderr = c.Stderr
	}
	c.cmd.WaitDelay = c.WaitDelay
	if c.cmd.WaitDelay <= 0 {
		c.cmd.WaitDelay = 2 * time.Second
	}
	spec, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
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
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return fmt.Errorf("sandbox: %w", err)
	}
	c.ctl, c.report = ctlW, repR
	var once sync.Once
	c.closeCtl = func() { once.Do(func() { ctlW.Close() }) }
	c.cmd.ExtraFiles = []*os.File{ctlR, repW}
	err = c.cmd.Start()
	ctlR.Close()
	repW.Close()
	if err != nil {
		c.closeCtl()
		repR.Close()
		return fmt.Errorf("sandbox: starting the launcher: %w", err)
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(spec)))
	if _, err := ctlW.Write(append(msg, spec...)); err != nil {
		c.closeCtl()
		c.cmd.Wait()
		repR.Close()
		return fmt.Errorf("sandbox: handing the target to the launcher: %w", err)
	}
	// The launcher closes the report pipe once the target runs, or
	// writes why it could not start it and exits; a launcher killed with
	// ctx closes it too. The deadline is a backstop.
	repR.SetReadDeadline(time.Now().Add(launchWait))
	c.setup, _ = io.ReadAll(io.LimitReader(repR, 4096))
	return nil
}

// launchSlots bounds the launchers starting at once.
var launchSlots = make(chan struct{}, max(2, runtime.NumCPU()))

// launchWait bounds how long Start waits for a launcher to start its
// target.
const launchWait = 30 * time.Second

// Wait waits for the target and everything it started to be gone. A
// failure to set the sandbox up is a *SetupError; a non-zero exit is an
// *exec.ExitError.
func (c *Cmd) Wait() error {
	if c.report == nil {
		return fmt.Errorf("sandbox: Wait without a successful Start")
	}
	err := c.cmd.Wait()
	c.closeCtl()
	if ps := c.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// The launcher itself was killed: its group goes too.
			syscall.Kill(-ps.Pid(), syscall.SIGKILL)
		}
	}
	c.report.SetReadDeadline(time.Now().Add(time.Second))
	msg, _ := io.ReadAll(io.LimitReader(c.report, 4096))
	c.report.Close()
	msg = append(c.setup, msg...)
	if len(msg) > 0 {
		return &SetupError{Msg: strings.TrimSpace(string(msg))}
	}
	return err
}

// launcherEnv is the launcher's whole environment. One P is all a
// launcher needs (its threads mostly wait), and a GOMAXPROCS of its own
// spares the Go runtime reading the cgroup files at start-up. The target
// gets only the environment of its Target.
var launcherEnv = []string{"GOMAXPROCS=1"}
