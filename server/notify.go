package server

import (
	"context"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Notifications a handler passes on to the client of its call (an
// upstream MCP server's progress and log messages) go through these: to
// the calling session only, redacted, each write bounded in time so a
// client that stops reading cannot hold the handler.

// notifyTimeout bounds the write of one notification.
const notifyTimeout = 2 * time.Second

// sessionLog is plugin.Session for one client session. It is a
// comparable value: calls from one session carry equal ones.
type sessionLog struct {
	ss  *mcp.ServerSession
	red *audit.Redactor
}

var _ plugin.Session = sessionLog{}

// logLevels are the MCP logging levels; another word is sent as "info".
var logLevels = map[string]bool{"debug": true, "info": true, "notice": true, "warning": true,
	"error": true, "critical": true, "alert": true, "emergency": true}

func (l sessionLog) Log(ctx context.Context, level, logger string, data any) error {
	if !logLevels[level] {
		level = "info"
	}
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	return l.ss.Log(ctx, &mcp.LoggingMessageParams{Level: mcp.LoggingLevel(level),
		Logger: l.red.String(logger), Data: l.red.Value(data)})
}

// notifiers are the call's progress sender (when the client sent a
// progressToken) and its session.
func (p *pipeline) notifiers(req *mcp.CallToolRequest) (plugin.Progress, plugin.Session) {
	ss := req.Session
	if ss == nil {
		return nil, nil
	}
	red := p.redact
	session := sessionLog{ss: ss, red: red}
	if req.Params == nil {
		return nil, session
	}
	token := req.Params.GetProgressToken()
	if token == nil {
		return nil, session
	}
	progress := func(ctx context.Context, progress, total float64, message string) error {
		ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
		defer cancel()
		return ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token,
			Progress: progress, Total: total, Message: red.String(message)})
	}
	return progress, session
}
