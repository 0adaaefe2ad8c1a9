package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// A Plugin contributes tools to the server. It is built by its [Factory]
// once per server and asked for its tools once; it must not reach the
// network, the filesystem or other processes except through the [Host].
type Plugin interface {
	// Info names the plugin. The name matches its registration.
	Info() Info
	// Tools returns the tools the plugin serves.
	Tools() []Tool
}

// Closer is a plugin that holds resources (a database, a child process):
// the server calls Close once at shutdown, after the last call has been
// answered.
type Closer interface {
	Close() error
}

// Info describes a plugin.
type Info struct {
	Name        string // registration name, e.g. "discovery"
	Version     string // semantic version of the plugin
	Description string
}

// A Tool is one MCP tool served by a plugin.
type Tool struct {
	Name        string // MCP tool name; unique across all plugins
	Title       string // optional human-readable title
	Description string // shown to the model in tools/list

	// Category groups tools for discovery (list_categories, search_tools).
	Category string
	// Aliases are other words a user or model may search for.
	Aliases []string
	// Intents are task categories the tool serves, e.g. "research", "track".
	Intents []string

	// InputSchema is a JSON Schema (draft 2020-12) object schema for the
	// arguments. The server validates every call against it before the
	// handler runs.
	InputSchema json.RawMessage
	// OutputSchema optionally describes StructuredContent.
	OutputSchema json.RawMessage
	// Annotations are optional hints about the tool's behaviour, offered to
	// clients as MCP tool annotations. They are hints, never trusted by the
	// policy.
	Annotations *Annotations

	// Handler runs an allowed, validated call.
	Handler Handler

	// Local says the handler only reads the server's own state in memory
	// (the catalog, say): it reaches nothing through the doors, keeps no
	// state and returns promptly. The server may then run it on the
	// goroutine that read the request instead of handing it over. Leave
	// it false for anything else.
	Local bool

	// Bounded says the handler returns once ctx ends: every wait it
	// makes ends with ctx, or at ctx's deadline. The server may then run
	// it on the goroutine that runs the call, saving the hand-over to a
	// goroutine of its own (which the server only needs to walk away
	// from a handler that would hold it past the deadline). Leave it
	// false for a handler that may block on anything else.
	Bounded bool

	// Definition, when set, reports at each decision whether the tool's
	// definition differs from the one the operator pinned (tools from
	// outside the binary, such as an upstream MCP server's); nil means
	// the definition is the binary's own and cannot change. Whatever
	// changes what it reports calls DefinitionChanging first.
	Definition func() DefinitionState
}

// Annotations are the MCP tool annotations (hints for clients).
type Annotations struct {
	Title           string `json:"title,omitempty"`
	ReadOnlyHint    bool   `json:"readOnlyHint,omitempty"`
	DestructiveHint *bool  `json:"destructiveHint,omitempty"`
	IdempotentHint  bool   `json:"idempotentHint,omitempty"`
	OpenWorldHint   *bool  `json:"openWorldHint,omitempty"`
}

// Handler runs one tool call. Arguments have been validated against the
// tool's input schema, rate limited and allowed by the policy when it runs.
// ctx carries the policy's deadline. A returned error becomes a tool error
// result with a generic message; return a [Result] with IsError set to give
// the model an actionable message instead.
type Handler func(ctx context.Context, call *Call) (*Result, error)

// Call is one tools/call as seen by a handler.
type Call struct {
	Tool       string          // tool name
	Arguments  json.RawMessage // validated JSON object
	RequestID  string          // JSON-RPC id of the request, as text
	DecisionID string          // id of the policy decision that allowed it
	Client     Client          // the calling MCP client
	// ProtocolVersion is the MCP protocol version the client negotiated or
	// sent with the request.
	ProtocolVersion string
	// Progress, when the client asked for progress notifications on this
	// call, sends one; nil otherwise.
	Progress Progress
	// Session reaches the calling client session; nil when there is none.
	Session Session
}

// Client identifies the calling MCP client.
type Client struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Result is what a handler returns.
type Result struct {
	// Text is the human- and model-readable content.
	Text string
	// Structured, if non-nil, is sent as structuredContent; it must encode
	// to a JSON object.
	Structured any
	// IsError marks a tool-level failure the model can act on.
	IsError bool
}

// Errorf returns an error result whose text the model sees.
func Errorf(format string, args ...any) *Result {
	return &Result{Text: fmt.Sprintf(format, args...), IsError: true}
}

// Host is what the server hands to plugins: the only doors to the server's
// state and, through the guards, to the world.
type Host interface {
	// Logger writes to stderr; never to stdout, which carries the protocol.
	Logger() *slog.Logger
	// Catalog describes the tools of all plugins and what the policy lets
	// a caller use.
	Catalog() Catalog
	// Network is the only way out to the network: every connection it
	// makes is a policy decision on the address actually connected.
	Network() Network
	// Files is the only way to the filesystem on a tool's behalf.
	Files() Files
	// Commands is the only way to start a process.
	Commands() Commands
	// DataDir is a directory the server owns for the named plugin's own
	// state (databases, caches), created 0700 on first use. It is not a
	// tool's request, so it is not decided by the filesystem policy; tools
	// must never hand a path from their arguments to it.
	DataDir(plugin string) (string, error)
	// Setting returns a plugin's setting from the policy's
	// plugins.<name>.<key> (paths already expanded), or "".
	Setting(plugin, key string) string
}

// Network makes outbound connections on a tool's behalf. Each connection
// attempt, redirects included, is decided by the network policy with the
// calling tool in view (taken from the handler's context) and audited. A
// denial is an error that wraps the guard's denial, which the server turns
// into a tool error naming what the policy blocked.
type Network interface {
	// HTTPClient returns a client (no proxy, at most 5 redirects) whose
	// every dial goes through the policy; timeout 0 means none besides the
	// call's deadline.
	HTTPClient(timeout time.Duration) *http.Client
	// DialContext connects to address ("host:port") over TCP.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Catalog is the server's view of every registered tool.
type Catalog interface {
	// Entries lists every registered tool, sorted by name.
	Entries() []Entry
	// Permitted reports whether the policy allows the client of call to
	// use the named tool, with the policy's reasons when it does not.
	Permitted(ctx context.Context, call *Call, tool string) (bool, []string)
}

// CatalogView is implemented by a Catalog whose answers may be
// memoised. View returns a token for the catalog as call's client sees
// it now: the registered tools and the policy in force for that client.
// Two tokens are equal (==) only when Entries and Permitted answer alike
// for both; ok false means the answers may change from call to call, and
// nothing may be kept. A plugin that keeps an answer under a token must
// also find the token unchanged after computing it (the tools or the
// policy may change meanwhile).
type CatalogView interface {
	View(ctx context.Context, call *Call) (token any, ok bool)
}

// Entry is a registered tool with the plugin that serves it.
type Entry struct {
	Tool          Tool
	Plugin        string // plugin name
	PluginVersion string
}
