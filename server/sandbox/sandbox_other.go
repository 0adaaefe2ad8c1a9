//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Probe reports that this OS has no Landlock.
func Probe() Support { return Support{Reason: "Landlock needs Linux"} }

// UnconfinedLeft is what still holds a child started unconfined: off
// Linux, nothing but the call's timeout.
const UnconfinedLeft = "started directly, with no launcher: no no_new_privs, rlimits or subreaper, and only the child itself is killed at the timeout"

// RunIfLauncher does nothing off Linux: children are started directly.
func RunIfLauncher() {}

// LauncherDesc says that children start with no launcher off Linux.
func LauncherDesc() string { return "none: children are started directly" }

// Cmd runs an unconfined target directly off Linux.
type Cmd struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	WaitDelay      time.Duration

	target Target
	cmd    *exec.Cmd
}

// Command prepares t; off Linux only an Unconfined target starts.
func Command(ctx context.Context, t Target) *Cmd {
	c := &Cmd{target: t, cmd: exec.CommandContext(ctx, t.Path)}
	c.cmd.Args, c.cmd.Env, c.cmd.Dir = t.Args, t.Env, t.Dir
	return c
}

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
	return c.cmd.Start()
}

func (c *Cmd) Wait() error { return c.cmd.Wait() }
