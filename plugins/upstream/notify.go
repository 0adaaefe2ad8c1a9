package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// relayLevel is the level asked of an upstream with logging/setLevel.
const relayLevel = "info"

// relayTimeout bounds the passing on of one notification.
const relayTimeout = 2 * time.Second

// logLinger is how long after its answer a call's session still gets
// the upstream's log messages: the SDK may handle a notification sent
// just before the answer after it. Progress stops at the answer.
const logLinger = 250 * time.Millisecond

// maxLogAttrs bounds the attributes a log message's data becomes in the
// server's log, and maxLogDepth its nesting.
const (
	maxLogAttrs = 256
	maxLogDepth = 8
)

// callsInFlight are the calls forwarded and not yet answered: the
// session each came from (log messages go there) and, when its client
// asked for progress, the token sent to the upstream in its place.
type callsInFlight struct {
	next     uint64
	sessions map[uint64]plugin.Session
	progress map[string]plugin.Progress // our token -> the call's
}

// track records a call about to be forwarded and returns the progress
// token to send with it ("" when its client asked for no progress); the
// returned function forgets it. Called without u.mu.
func (u *Upstream) track(call *plugin.Call) (token string, done func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := &u.calls
	c.next++
	id := c.next
	if call.Session != nil {
		if c.sessions == nil {
			c.sessions = map[uint64]plugin.Session{}
		}
		c.sessions[id] = call.Session
	}
	if call.Progress != nil {
		if c.progress == nil {
			c.progress = map[string]plugin.Progress{}
		}
		// The client's own token never reaches the upstream: ours maps
		// back to the call.
		token = "mcp-secure-" + strconv.FormatUint(id, 10)
		c.progress[token] = call.Progress
	}
	return token, func() {
		u.mu.Lock()
		if token != "" {
			delete(c.progress, token)
		}
		u.mu.Unlock()
		if call.Session == nil {
			return
		}
		time.AfterFunc(logLinger, func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			delete(c.sessions, id)
		})
	}
}

// relayProgress passes a progress notification on to the call it is
// for; one whose token is not a call in flight is dropped.
func (u *Upstream) relayProgress(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
	if r.Params == nil {
		return
	}
	token, _ := r.Params.ProgressToken.(string)
	u.mu.Lock()
	send := u.calls.progress[token]
	u.mu.Unlock()
	if send == nil {
		u.log.Debug("upstream progress for no call in flight dropped", "token", r.Params.ProgressToken)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
	defer cancel()
	if err := send(ctx, r.Params.Progress, r.Params.Total, r.Params.Message); err != nil {
		u.log.Debug("passing on upstream progress failed", "err", err)
	}
}

// relayLog writes an upstream's log message to the server's log (its
// data as attributes, so the handler redacts values under sensitive keys)
// and passes it on, as it came, to the session with calls to this
// upstream in flight (the server redacts it whole, then caps it). A
// message names no call: when calls of several sessions are in flight,
// it may be about any of them, and goes to the server's log only.
func (u *Upstream) relayLog(_ context.Context, r *mcp.LoggingMessageRequest) {
	if r.Params == nil {
		return
	}
	p := r.Params
	data := p.Data
	budget := maxLogAttrs
	u.log.Log(context.Background(), slogLevel(string(p.Level)), "upstream log message", "level", p.Level, "logger", p.Logger, logAttr("data", data, 0, &budget))
	u.mu.Lock()
	var only plugin.Session
	for _, s := range u.calls.sessions {
		if only != nil && s != only {
			only = nil
			u.mu.Unlock()
			u.log.Debug("upstream log message not passed on: calls of several sessions are in flight")
			return
		}
		only = s
	}
	u.mu.Unlock()
	if only == nil {
		return
	}
	logger := p.Logger
	if logger == "" {
		logger = u.cfg.Name
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
	defer cancel()
	if err := only.Log(ctx, string(p.Level), logger, data); err != nil {
		u.log.Debug("passing on an upstream log message failed", "err", err)
	}
}

// logAttr is a message's data as a log attribute: objects and arrays as
// groups (keys sorted, array items keyed by index), so the server's log
// handler sees every key and redacts by it; at most *budget attributes
// and maxLogDepth levels, the rest noted as left out. The handler caps
// each string.
func logAttr(key string, v any, depth int, budget *int) slog.Attr {
	*budget--
	if *budget < 0 {
		return slog.String(key, "[left out: too many values]")
	}
	var keys []string
	var item func(k string) any
	switch x := v.(type) {
	case map[string]any:
		keys = slices.Sorted(maps.Keys(x))
		item = func(k string) any { return x[k] }
	case []any:
		for i := range x {
			keys = append(keys, strconv.Itoa(i))
		}
		item = func(k string) any { i, _ := strconv.Atoi(k); return x[i] }
	case string:
		return slog.String(key, x)
	case nil, bool, float64, json.Number:
		return slog.Any(key, x)
	default:
		// Not decoded JSON: as JSON text, redacted as text.
		raw, err := json.Marshal(x)
		if err != nil {
			return slog.String(key, "[left out: not JSON]")
		}
		return slog.String(key, string(raw))
	}
	if depth >= maxLogDepth {
		return slog.String(key, "[left out: nested too deep]")
	}
	attrs := make([]any, 0, len(keys))
	for _, k := range keys {
		if *budget <= 0 {
			attrs = append(attrs, slog.String("...", fmt.Sprintf("[%d more left out]", len(keys)-len(attrs))))
			break
		}
		attrs = append(attrs, logAttr(k, item(k), depth+1, budget))
	}
	return slog.Group(key, attrs...)
}

// slogLevel maps an MCP logging level to the server log's.
func slogLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "info", "notice":
		return slog.LevelInfo
	case "warning":
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
