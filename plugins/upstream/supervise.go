package upstream

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// supervise waits for the process to end and starts it again, with
// backoff, until Close.
func (u *Upstream) supervise(cs *mcp.ClientSession, proc plugin.Process) {
	defer close(u.done)
	backoff := u.cfg.MinBackoff
	started := time.Now()
	for {
		if cs != nil {
			cs.Wait()
			proc.Kill()
			code, err := proc.Wait()
			u.mu.Lock()
			closed := u.closed
			u.session, u.proc = nil, nil
			u.down = fmt.Sprintf("it exited (status %d)", code)
			if err != nil {
				u.down = "it exited: " + err.Error()
			}
			u.mu.Unlock()
			if closed {
				return
			}
			u.log.Warn("upstream server exited; restarting", "status", code, "err", err, "after", backoff)
			if time.Since(started) >= stableAfter {
				backoff = u.cfg.MinBackoff
			}
		}
		select {
		case <-u.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, u.cfg.MaxBackoff)
		var listed []listedTool
		var err error
		cs, proc, listed, err = u.start(context.Background())
		if err != nil {
			u.mu.Lock()
			u.down = "restart failed: " + err.Error()
			u.mu.Unlock()
			u.log.Warn("restarting the upstream server failed", "err", err, "retry_in", backoff)
			cs, proc = nil, nil
			continue
		}
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			cs.Close()
			proc.Kill()
			proc.Wait()
			return
		}
		u.session, u.proc, u.down = cs, proc, ""
		u.mu.Unlock()
		started = time.Now()
		u.noteNew(listed)
		u.log.Info("upstream server restarted", "tools", len(listed))
	}
}
