package upstream

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// after is how supervise waits out a backoff; tests note the waits.
var after = time.After

// supervise waits for the process to end and starts it again, with
// backoff, until Close. With a nil session the first start failed: it
// is retried with the same backoff.
func (u *Upstream) supervise(cs *mcp.ClientSession, proc plugin.Process) {
	defer close(u.done)
	backoff := u.cfg.MinBackoff
	upSince := time.Now()
	everUp := cs != nil
	for {
		if cs != nil {
			cs.Wait()
			proc.Kill()
			code, err := proc.Wait()
			u.mu.Lock()
			closed := u.closed
			u.session, u.wire, u.proc = nil, nil, nil
			u.down = fmt.Sprintf("it exited (status %d)", code)
			if err != nil {
				u.down = "it exited: " + err.Error()
			}
			u.mu.Unlock()
			if closed {
				return
			}
			u.log.Warn("upstream server exited; restarting", "status", code, "err", err, "after", backoff)
			if time.Since(upSince) >= stableAfter {
				backoff = u.cfg.MinBackoff
			}
		}
		select {
		case <-u.stop:
			return
		case <-after(backoff):
		}
		backoff = min(2*backoff, u.cfg.MaxBackoff)
		var listed []listedTool
		var w *wire
		var err error
		// Close cancels a start under way.
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-u.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		cs, w, proc, listed, err = u.start(ctx)
		cancel()
		if err != nil {
			u.mu.Lock()
			if everUp {
				u.down = "restart failed: " + err.Error()
			} else {
				u.down = "its start failed: " + err.Error()
			}
			u.mu.Unlock()
			u.log.Warn("starting the upstream server failed; retrying", "err", err, "retry_in", backoff)
			cs, proc = nil, nil
			continue
		}
		if !u.adopt(started{cs: cs, w: w, proc: proc, listed: listed}) {
			return
		}
		upSince = time.Now()
		if everUp {
			u.log.Info("upstream server restarted", "tools", len(listed))
		} else {
			u.log.Info("upstream server started after its first start failed; offering its tools", "tools", len(listed))
		}
		everUp = true
		u.changed()
	}
}
