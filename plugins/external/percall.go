package external

import (
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

// drainGrace is how long output may still arrive once the process tree is
// gone (a grandchild that kept the pipe is killed with the tree).
const drainGrace = 2 * time.Second

// perCall starts the plugin's executable for every call.
type perCall struct {
	m        *Manifest
	launcher plugin.Launcher
	log      *slog.Logger
}

func (r *perCall) close() {}

func (r *perCall) run(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	if r.launcher == nil {
		return nil, errors.New("external plugins cannot be started: the server has no launcher")
	}
	req, err := encodeRequest(call, 0)
	if err != nil {
		return nil, err
	}
	proc, err := r.launcher.Launch(ctx, r.m.LaunchSpec(os.LookupEnv))
	if err != nil {
		return nil, err
	}
	stdout := &limited{n: MaxOutput + 1}
	stderr := &limited{n: maxStderr}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		in := proc.Stdin()
		in.Write(append(req, '\n')) // a process that does not read gets EPIPE: fine
		in.Close()
	}()
	go func() { defer wg.Done(); io.Copy(stdout, proc.Stdout()) }()
	go func() { defer wg.Done(); io.Copy(stderr, proc.Stderr()) }()
	code, werr := proc.Wait()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainGrace):
	}
	proc.Stdout().Close()
	proc.Stderr().Close()
	proc.Stdin().Close()
	<-drained
	logStderr(r.log, r.m, call, stderr)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("external tool %s: %w", call.Tool, context.Cause(ctx))
	}
	if errors.Is(werr, plugin.ErrLauncherStopped) {
		return plugin.Errorf("external tool %s (plugin %s) was killed: %v", call.Tool, r.m.Name, werr), nil
	}
	if werr != nil {
		return nil, fmt.Errorf("external tool %s: %w", call.Tool, werr)
	}
	if code != 0 {
		return exitResult(r.m, call.Tool, code), nil
	}
	if stdout.buf.Len() > MaxOutput || stdout.dropped > 0 {
		return plugin.Errorf("external tool %s answered more than %d bytes (the limit is 1 MiB)", call.Tool, MaxOutput), nil
	}
	res, err := decodeResponse(stdout.buf.Bytes())
	if err != nil {
		return plugin.Errorf("external tool %s: %v", call.Tool, err), nil
	}
	return res, nil
}

// exitResult says how a process ended that did not exit 0.
func exitResult(m *Manifest, tool string, code int) *plugin.Result {
	if code > 128 {
		return plugin.Errorf("external tool %s crashed: its process (plugin %s) was killed by signal %d", tool, m.Name, code-128)
	}
	return plugin.Errorf("external tool %s failed: its process (plugin %s) exited with status %d", tool, m.Name, code)
}

// logStderr hands what a process wrote to stderr to the server's log
// (which redacts it), capped.
func logStderr(log *slog.Logger, m *Manifest, call *plugin.Call, stderr *limited) {
	if stderr.buf.Len() == 0 {
		return
	}
	attrs := []any{"plugin", m.Name, "stderr", stderr.buf.String()}
	if call != nil {
		attrs = append(attrs, "tool", call.Tool, "decision_id", call.DecisionID)
	}
	if stderr.dropped > 0 {
		attrs = append(attrs, "stderr_dropped_bytes", stderr.dropped)
	}
	log.Warn("external plugin wrote to stderr", attrs...)
}
