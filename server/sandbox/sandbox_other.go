//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Probe reports that this OS has no Landlock.
func Probe() Support { return Support{Reason: "Landlock needs Linux"} }

// checksPinned: off Linux no launcher checks a target's Pinned file.
const checksPinned = false

// UnconfinedLeft is what still holds a child started unconfined: off
// Linux, nothing but the call's timeout.
const UnconfinedLeft = "started directly, with no launcher: no no_new_privs, rlimits or subreaper, and only the child itself is killed at the timeout"

// RunIfLauncher does nothing off Linux: children are started directly.
func RunIfLauncher() {}

// BecomeSubreaper does nothing off Linux, where children start without
// a launcher.
func BecomeSubreaper() error { return nil }

// LauncherDesc says that children start with no launcher off Linux.
func LauncherDesc() string { return "none: children are started directly" }

// Cmd runs an unconfined target directly off Linux.
type Cmd struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	WaitDelay      time.Duration

	target Target
	cmd    *exec.Cmd

	piped         bool
	in, out, errs *os.File
}

// Command prepares t; off Linux only an Unconfined target starts.
func Command(ctx context.Context, t Target) *Cmd {
	c := &Cmd{target: t, cmd: exec.CommandContext(ctx, t.Path)}
	c.cmd.Args, c.cmd.Env, c.cmd.Dir = t.Args, t.Env, t.Dir
	return c
}

// Piped prepares t with pipes as its standard streams; [Cmd.Pipes]
// hands out the other ends after Start.
func Piped(ctx context.Context, t Target) *Cmd {
	c := Command(ctx, t)
	c.piped = true
	return c
}

// ExitCode is the target's exit status after Wait, -1 when it did not
// run.
func (c *Cmd) ExitCode() int {
	if c.cmd.ProcessState == nil {
		return -1
	}
	return c.cmd.ProcessState.ExitCode()
}

// Pipes returns the server's ends of a piped target's standard streams.
func (c *Cmd) Pipes() (stdin, stdout, stderr *os.File) { return c.in, c.out, c.errs }

func (c *Cmd) StdinPipe() (io.WriteCloser, error) { return c.cmd.StdinPipe() }
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) { return c.cmd.StdoutPipe() }
func (c *Cmd) StderrPipe() (io.ReadCloser, error) { return c.cmd.StderrPipe() }

func (c *Cmd) Start() error {
	if !c.target.Unconfined {
		return fmt.Errorf("%w: %s", ErrUnavailable, Probe().Reason)
	}
	if !strings.HasPrefix(c.target.Path, "/") || len(c.target.Args) == 0 {
		return fmt.Errorf("sandbox: target %q: want an absolute path and argv", c.target.Path)
	}
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = c.Stdin, c.Stdout, c.Stderr
	c.cmd.WaitDelay = c.WaitDelay
	if !c.piped {
		return c.cmd.Start()
	}
	var ends []*os.File // the child's, then the server's
	for range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range ends {
				f.Close()
			}
			return fmt.Errorf("sandbox: %w", err)
		}
		ends = append(ends, r, w)
	}
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = ends[0], ends[3], ends[5]
	err := c.cmd.Start()
	ends[0].Close()
	ends[3].Close()
	ends[5].Close()
	if err != nil {
		ends[1].Close()
		ends[2].Close()
		ends[4].Close()
		return err
	}
	c.in, c.out, c.errs = ends[1], ends[2], ends[4]
	return nil
}

func (c *Cmd) Wait() error { return c.cmd.Wait() }
