package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

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

// maxLogData caps the data of a log message passed on to a client, in
// bytes of its JSON after redaction.
const maxLogData = 16 << 10

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
	if quietLog(ctx) {
		return nil
	}
	if !logLevels[level] {
		level = "info"
	}
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	return l.ss.Log(ctx, &mcp.LoggingMessageParams{Level: mcp.LoggingLevel(level),
		Logger: capText(l.red.String(logger), maxLogger), Data: capLogData(l.red.Value(data))})
}

// maxLogger and maxProgress cap a log message's logger name and a
// progress message a tool (an upstream server's, say) sends the client.
const (
	maxLogger   = 256
	maxProgress = 4 << 10
)

// capText cuts s to at most n bytes, on a character boundary, saying so.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf(" [truncated: %d bytes]", len(s))
}

// capLogData keeps redacted data within maxLogData: larger data becomes
// its JSON text cut there. It is cut only after redaction, which works
// on the structure (values under sensitive keys); text has no keys.
func capLogData(data any) any {
	raw, err := json.Marshal(data)
	if err != nil {
		return "[log data left out: not JSON]"
	}
	if len(raw) <= maxLogData {
		return data
	}
	return capText(string(raw), maxLogData)
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
			Progress: progress, Total: total, Message: capText(red.String(message), maxProgress)})
	}
	return progress, session
}
