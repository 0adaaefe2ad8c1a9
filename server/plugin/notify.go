package plugin

import "context"

// Session reaches the client session that made a call, for the
// notifications a handler passes on (an upstream MCP server's log
// messages). Calls from one session carry equal (==) values, so a
// plugin can send a message once to each session with a call in flight.
type Session interface {
	// Log sends notifications/message to the session, redacted (data
	// whole, by key, before it is capped at 16 KiB of JSON), when its
	// client asked for messages of level or above (logging/setLevel);
	// otherwise it sends nothing. level is an MCP logging level ("debug",
	// "info", "warning", "error", ...).
	Log(ctx context.Context, level, logger string, data any) error
}

// Progress sends notifications/progress for one call to the client that
// made it (under the client's progressToken); message is redacted.
type Progress func(ctx context.Context, progress, total float64, message string) error
