package upstream

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// recordingLauncher is a plugin.Launcher that remembers what it was asked.
type recordingLauncher struct {
	spec *plugin.LaunchSpec
	ctx  context.Context
}

func (r *recordingLauncher) LaunchConfinement(*plugin.LaunchSpec) (string, error) { return "", nil }

func (r *recordingLauncher) Launch(ctx context.Context, spec *plugin.LaunchSpec) (plugin.Process, error) {
	r.ctx, r.spec = ctx, spec
	return &fakeProcess{done: make(chan struct{})}, nil
}

// TestDoor: the door is asked for the server's spec, and the process
// outlives the context of its start (which only bounds the start).
func TestDoor(t *testing.T) {
	rl := &recordingLauncher{}
	spec := &plugin.LaunchSpec{Server: "demo", Path: "node"}
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := (Door{Launcher: rl, Spec: spec}).Launch(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if rl.spec != spec {
		t.Errorf("launched %+v, want the server's spec", rl.spec)
	}
	if rl.ctx.Err() != nil {
		t.Errorf("the process's context ends with its start: %v", rl.ctx.Err())
	}
}

// lockedBuf is a log destination safe for the reading goroutine.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogStderr: each line goes to the log, capped; everything is read,
// so the child never blocks on a full pipe.
func TestLogStderr(t *testing.T) {
	var buf lockedBuf
	u := &Upstream{log: slog.New(slog.NewTextHandler(&buf, nil))}
	r, w := io.Pipe()
	done := make(chan struct{})
	go func() { u.logStderr(r); close(done) }()
	long := strings.Repeat("x", 3*maxStderrLine)
	writeDone := make(chan error, 1)
	go func() {
		_, err := io.WriteString(w, "first line\n\n"+long+"\nafter the long one\n")
		w.Close()
		writeDone <- err
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logStderr did not finish")
	}
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if got := strings.Count(out, "upstream stderr"); got != 3 {
		t.Errorf("%d log lines, want 3 (the empty line skipped):\n%s", got, out)
	}
	for _, want := range []string{"line=\"first line\"", "line=\"after the long one\"", "line=" + strings.Repeat("x", maxStderrLine) + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want[:min(len(want), 40)])
		}
	}
	if strings.Contains(out, strings.Repeat("x", maxStderrLine+1)) {
		t.Error("a line was not capped")
	}
}
