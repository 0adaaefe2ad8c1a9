//go:build unix

package upstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// shellLauncher runs script under /bin/sh over real pipes, as the sandbox
// launcher does (unconfined: this package's tests need no sandbox).
type shellLauncher struct{ script string }

func (l shellLauncher) Launch(context.Context) (plugin.Process, error) {
	var ends [6]*os.File // stdin r/w, stdout r/w, stderr r/w
	for i := 0; i < 6; i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		ends[i], ends[i+1] = r, w
	}
	cmd := exec.Command("/bin/sh", "-c", l.script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ends[0], ends[3], ends[5]
	err := cmd.Start()
	ends[0].Close()
	ends[3].Close()
	ends[5].Close()
	if err != nil {
		return nil, err
	}
	return &shellProcess{cmd: cmd, in: ends[1], out: ends[2], errs: ends[4]}, nil
}

type shellProcess struct {
	cmd           *exec.Cmd
	in, out, errs *os.File
}

func (p *shellProcess) Stdin() io.WriteCloser { return p.in }
func (p *shellProcess) Stdout() io.ReadCloser { return p.out }
func (p *shellProcess) Stderr() io.ReadCloser { return p.errs }
func (p *shellProcess) Kill()                 { p.cmd.Process.Kill() }
func (p *shellProcess) Pid() int              { return p.cmd.Process.Pid }

func (p *shellProcess) Wait() (int, error) {
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if err == nil || errors.As(err, &exit) {
		return p.cmd.ProcessState.ExitCode(), nil
	}
	return -1, err
}

// TestHandshakeFailureSaysHowTheProcessEnded: a server that exits before
// it answers the handshake is named with its exit code (its stderr stays
// out of the error); one that refuses the handshake, or says nothing
// until the start times out, and exits only once its stdin is closed here
// is not said to have exited first.
func TestHandshakeFailureSaysHowTheProcessEnded(t *testing.T) {
	for _, c := range []struct {
		name, script string
		exited       bool
	}{
		{"exits", "echo the cause >&2; exit 7", true},
		{"refuses", `while read -r line; do
			id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
			[ -n "$id" ] && printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"not today"}}\n' "$id"
		done`, false},
		{"silent", "cat >/dev/null", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var failed []error
			u, err := New(t.Context(), Config{Name: c.name, Prefix: "s__", Launcher: shellLauncher{script: c.script},
				Pins: &memPins{pinned: map[string]string{}}, StartTimeout: 500 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour,
				StartFailed: func(err error) { failed = append(failed, err) }})
			if u != nil {
				u.Close()
			}
			if err == nil {
				t.Fatal("the start succeeded")
			}
			said := strings.Contains(err.Error(), "the process exited with code")
			if c.exited && !strings.Contains(err.Error(), "the process exited with code 7 before it answered") {
				t.Errorf("error %q does not say how the process ended", err)
			}
			if !c.exited && said {
				t.Errorf("error %q says the process exited first; it exited when its stdin was closed", err)
			}
			if strings.Contains(err.Error(), "the cause") {
				t.Errorf("the process's stderr is in the error: %q", err)
			}
			// Told once, with the error New returns.
			if len(failed) != 1 || !strings.Contains(err.Error(), failed[0].Error()) {
				t.Errorf("StartFailed told %v; New returned %v", failed, err)
			}
		})
	}
}

// TestStderrOfRepeatedFailuresIsQuieter: the stderr of a server that
// keeps failing to start is logged at info level for its first
// quietAfter starts in a row, then at debug level, with one line saying
// so.
func TestStderrOfRepeatedFailuresIsQuieter(t *testing.T) {
	var logs lockedBuf
	failed := make(chan struct{}, 64)
	u, err := New(t.Context(), Config{Name: "failing", Prefix: "f__", Launcher: shellLauncher{script: "echo the cause >&2; exit 7"},
		Pins: &memPins{pinned: map[string]string{}}, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StartFailed: func(error) { failed <- struct{}{} }})
	if !errors.Is(err, ErrNotStarted) {
		t.Fatalf("New: %v", err)
	}
	for range quietAfter + 4 { // the last one's stderr may still be on its way
		select {
		case <-failed:
		case <-time.After(30 * time.Second):
			t.Fatal("the server was not retried")
		}
	}
	u.Close()
	var info, debug, notices int
	for line := range strings.SplitSeq(logs.String(), "\n") {
		switch {
		case strings.Contains(line, "the cause") && strings.Contains(line, "level=INFO"):
			info++
		case strings.Contains(line, "the cause") && strings.Contains(line, "level=DEBUG"):
			debug++
		case strings.Contains(line, "logged at debug level from now on"):
			notices++
		}
	}
	if info != quietAfter || debug < 3 || notices != 1 {
		t.Errorf("stderr lines: %d at info (want %d), %d at debug (want 3 or more), %d notices (want 1)\n%s", info, quietAfter, debug, notices, logs.String())
	}
}
