package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Name is the server's name in serverInfo.
const Name = "mcp-secure"

// Instructions tell the model how to find its way around the tools.
const Instructions = "Tools are grouped in categories and guarded by a security policy. " +
	"Discover them with search_tools (query, category or intent) and list_categories before calling them; " +
	"a denied call returns isError with the policy's reason."

// Options configure a Server.
type Options struct {
	Version string       // reported in serverInfo
	Logger  *slog.Logger // stderr logger; nil discards
	Engine  Decider
	Limiter Limiter
	Audit   Auditor
	// Network is the network guard handed to plugins; nil refuses every
	// connection.
	Network plugin.Network
	// Files is the filesystem guard handed to plugins; nil refuses every
	// path.
	Files plugin.Files
	// Commands is the command guard handed to plugins; nil refuses every
	// process.
	Commands plugin.Commands
	// DataDir is the root of the plugins' own state directories; empty
	// means $XDG_DATA_HOME/mcp-secure (~/.local/share/mcp-secure).
	DataDir string
	// Settings are the policy's plugins.<name>.<key> values.
	Settings map[string]map[string]string
	// Timeout bounds each tool call; zero means 30 seconds.
	Timeout time.Duration
	// Plugins names the plugins to build, in order; nil means every
	// registered plugin.
	Plugins []string
	// Extra are plugins the caller built itself (the upstream servers of
	// the policy's servers: section), added after the registered ones.
	Extra []plugin.Plugin
	// OmitArguments keeps tool arguments out of audit records (the policy's
	// audit.include without "arguments").
	OmitArguments bool
	// ShutdownGrace is how long calls in flight may run on after a
	// shutdown is asked for (the context of Run ends) before they are
	// cancelled; zero means DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// MaxInFlight caps the requests in flight; zero means
	// DefaultMaxInFlight.
	MaxInFlight int
	// TracerProvider and MeterProvider receive the spans and metrics of
	// every request (see server/telemetry); nil (both needed) means none.
	// Redactor redacts the client strings put on spans.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Redactor       *audit.Redactor
	// DryRun, if set, decides each tool call again under the dry-run
	// policy, for the audit record only.
	DryRun DryRunner
}

// outputGrace is how long answers may take to be written after the calls
// in flight were cancelled at shutdown; endGrace, how long after the end
// of input was reported (every call answered or cancelled by then).
const (
	outputGrace = 2 * time.Second
	endGrace    = 10 * time.Second
)

// DefaultShutdownGrace is the default of Options.ShutdownGrace.
const DefaultShutdownGrace = 5 * time.Second

// Server is an MCP server whose every tools/call goes through the policy.
type Server struct {
	mcp  *mcp.Server
	pipe *pipeline
	log  *slog.Logger

	grace       time.Duration
	maxInFlight int
	// closers are the plugins to close at shutdown, in build order.
	closers []namedCloser
	// anyTool is one registered tool, added again to have the SDK
	// announce a changed list (see notifyToolsChanged); dyn guards it
	// and serialises changes of plugins' tools (dynamic.go).
	anyTool *mcp.Tool
	dyn     sync.Mutex
	// built are the plugins, in build order.
	built []plugin.Plugin
}

type namedCloser struct {
	name string
	c    plugin.Closer
}

// New builds the plugins and registers their tools.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil || opts.Limiter == nil || opts.Audit == nil {
		return nil, errors.New("server: engine, limiter and audit are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	stopped, cancelAll := context.WithCancelCause(context.Background())
	p := &pipeline{
		decide:  opts.Engine,
		limit:   opts.Limiter,
		audit:   opts.Audit,
		timeout: opts.Timeout,
		log:     log,
		now:     time.Now,

		omitArgs: opts.OmitArguments,
		sessions: &sessions{},
		stopped:  stopped,
		cancelAll: func() {
			cancelAll(errShutdown)
		},
		budget: newDenialBudget(time.Now),
		obs:    newObserver(opts.TracerProvider, opts.MeterProvider, opts.Redactor),
		dry:    opts.DryRun,
		redact: opts.Redactor,
	}
	if p.redact == nil {
		p.redact = audit.NewRedactor(nil)
	}
	p.serverInfo = &mcp.Implementation{Name: Name, Title: "mcp-secure", Version: opts.Version}
	p.serverInfoMeta = newServerInfoMeta(p.serverInfo)
	ms := mcp.NewServer(p.serverInfo, &mcp.ServerOptions{
		Instructions: Instructions,
		Logger:       log,
		// Logging: an upstream server's log messages are passed on to the
		// session whose call is in flight (notify.go).
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}, Logging: &mcp.LoggingCapabilities{}},
	})
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = DefaultShutdownGrace
	}
	s := &Server{mcp: ms, pipe: p, log: log, grace: opts.ShutdownGrace, maxInFlight: opts.MaxInFlight}

	names := opts.Plugins
	if names == nil {
		names = plugin.Registered()
	}
	network := opts.Network
	if network == nil {
		network = noNetwork
	}
	host := &host{log: log, catalog: &catalog{pipe: p}, network: network, audit: opts.Audit,
		files: opts.Files, commands: opts.Commands, dataDir: opts.DataDir, settings: opts.Settings}
	if host.files == nil {
		host.files = noFiles
	}
	if host.commands == nil {
		host.commands = noCommands
	}
	p.paths, _ = opts.Files.(pathChecker)
	p.urls, _ = opts.Network.(urlChecker)
	p.commands, _ = opts.Commands.(commandChecker)
	for _, name := range names {
		f, ok := plugin.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("server: plugin %q is not in this build", name)
		}
		pl, err := f(host)
		if err != nil {
			return nil, fmt.Errorf("server: plugin %q: %w", name, err)
		}
		info := pl.Info()
		s.built = append(s.built, pl)
		if c, ok := pl.(plugin.Closer); ok {
			s.closers = append(s.closers, namedCloser{name, c})
		}
		for _, t := range pl.Tools() {
			if err := s.addTool(info, t); err != nil {
				return nil, fmt.Errorf("server: plugin %q: %w", name, err)
			}
		}
	}
	for _, pl := range opts.Extra {
		if err := s.addPlugin(pl); err != nil {
			return nil, err
		}
	}
	s.watchPlugins()
	// readyMiddleware outside sessions.middleware: the fast lane opens
	// only once the identity of the handshake is recorded, as the SDK
	// handles nothing else until initialize has returned.
	ms.AddReceivingMiddleware(readyMiddleware, p.sessions.middleware, s.listFilter)
	// Every tools/call goes to the pipeline, whose tool table is the only
	// one consulted: a call racing a change of a plugin's tools (refresh
	// updates our table and the SDK's one after the other) is decided and
	// audited like any other, and an unknown name is answered with a
	// policy decision, an audit record and an error result instead of a
	// protocol error.
	ms.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if ctr, ok := req.(*mcp.CallToolRequest); ok && method == "tools/call" && ctr.Params != nil {
				res, err := p.call(ctx, ctr)
				openCalls(ctx, ctr.Session)
				return res, err
			}
			return next(ctx, method, req)
		}
	})
	// The request's span covers the whole request.
	ms.AddReceivingMiddleware(p.obs.middleware(p))
	// Outermost: every handler, its span included, runs on a pooled
	// worker (workers.go).
	ms.AddReceivingMiddleware(onWorkers)
	return s, nil
}

func (s *Server) addTool(info plugin.Info, t plugin.Tool) error {
	if _, dup := s.pipe.tools.get(t.Name); dup {
		return fmt.Errorf("tool %q is served twice", t.Name)
	}
	return s.putTool(info, t)
}

// putTool registers t, replacing a tool of the same name.
func (s *Server) putTool(info plugin.Info, t plugin.Tool) error {
	if t.Handler == nil {
		return fmt.Errorf("tool %q has no handler", t.Name)
	}
	var doc map[string]any
	if err := json.Unmarshal(t.InputSchema, &doc); err != nil || doc["type"] != "object" {
		// CompileSchema says why; a schema it takes all the same is
		// refused here on its shape.
		if _, err := plugin.CompileSchema(t.Name, t.InputSchema); err != nil {
			return err
		}
		return fmt.Errorf("tool %q: input schema must be an object schema with \"type\": \"object\"", t.Name)
	}
	rt := &registeredTool{Tool: t, plugin: info.Name, pluginVersion: info.Version, schema: newToolSchema(t.Name, t.InputSchema)}
	if hasFormats(doc) {
		rt.schemaDoc, rt.annotated = doc, true
	}
	s.pipe.tools.put(rt)
	mt := mcpTool(t)
	s.mcp.AddTool(mt, s.pipe.call)
	// A replaced tool is replaced here too: a policy reload adds anyTool
	// again, which must not bring back the old definition.
	if s.anyTool == nil || s.anyTool.Name == mt.Name {
		s.anyTool = mt
	}
	return nil
}

// Run serves one client over in and out until in ends or ctx is done.
//
// Either way every request read is answered before Run returns: at the
// end of in, calls in flight may run to their deadline; when ctx ends
// (SIGTERM), reading stops and calls in flight get the shutdown grace,
// then are cancelled (their processes killed) and answered as such.
func (s *Server) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	stuck := make(chan struct{})
	var hard *time.Timer
	var hmu sync.Mutex
	// Answers are owed, but a client that stops reading cannot hold the
	// server forever: once the end is under way, Run gives up on writes
	// still blocked on its output after a bound.
	giveUpAfter := func(d time.Duration) {
		hmu.Lock()
		defer hmu.Unlock()
		if hard == nil {
			hard = time.AfterFunc(d, func() { close(stuck) })
		}
	}
	t := &StdioTransport{In: in, Out: out, Logger: s.log, MaxInFlight: s.maxInFlight,
		DrainTimeout: s.pipe.timeout + time.Second, OnDrainTimeout: s.pipe.cancelAll,
		OnEnd: func() { giveUpAfter(endGrace) }}
	// The fast lane (fastlane.go) is for the stdio session; with
	// telemetry on, it takes tools/call only, through the request
	// middleware that makes their spans on the SDK's path.
	t.fast = newFastLane(s.pipe)
	defer t.fast.stop()
	sdkCtx := context.WithValue(context.WithoutCancel(ctx), fastLaneKey{}, t.fast)
	stop := s.summarise()
	watch := context.AfterFunc(ctx, func() {
		s.log.Info("shutting down: no new requests; calls in flight get a grace period", "grace", s.grace)
		t.Shutdown(s.grace)
		giveUpAfter(s.grace + cancelGrace + outputGrace)
	})
	ran := make(chan error, 1)
	go func() { ran <- s.mcp.Run(sdkCtx, t) }()
	var err error
	select {
	case err = <-ran:
	case <-stuck:
		err = errors.New("answers could not be written in time after the shutdown began (the client stopped reading its output)")
		s.log.Error("giving up on unwritten answers", "err", err)
	}
	watch()
	hmu.Lock()
	if hard != nil {
		hard.Stop()
	}
	hmu.Unlock()
	stop()
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close closes the plugins that hold resources, last built first. Call
// it once Run has returned.
func (s *Server) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i].c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing plugin %s: %w", s.closers[i].name, err))
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// summarise writes the summaries of coalesced refusals as they fall due,
// until the returned function is called; that writes the rest.
func (s *Server) summarise() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	write := func(all bool) {
		for _, r := range s.pipe.budget.due(all) {
			if err := s.pipe.audit.Log(context.Background(), r); err != nil {
				s.log.Error("audit write failed for a summary of refusals", "err", err)
			}
		}
	}
	go func() {
		defer close(finished)
		tick := time.NewTicker(summaryInterval / 2)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				write(false)
			case <-done:
				write(true)
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// MCP exposes the underlying SDK server, for in-process transports.
func (s *Server) MCP() *mcp.Server { return s.mcp }

type host struct {
	log      *slog.Logger
	catalog  *catalog
	audit    Auditor
	network  plugin.Network
	files    plugin.Files
	commands plugin.Commands
	dataDir  string
	settings map[string]map[string]string
}

func (h *host) Files() plugin.Files       { return h.files }
func (h *host) Commands() plugin.Commands { return h.commands }

func (h *host) Setting(name, key string) string { return h.settings[name][key] }

// DataDir returns <root>/<plugin>, created 0700.
func (h *host) DataDir(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("data directory: bad plugin name %q", name)
	}
	root := h.dataDir
	if root == "" {
		var err error
		if root, err = DefaultDataDir(); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	return dir, nil
}

// DefaultDataDir is $XDG_DATA_HOME/mcp-secure, else
// ~/.local/share/mcp-secure.
func DefaultDataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "mcp-secure"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "mcp-secure"), nil
}

var (
	_ plugin.Host            = (*host)(nil)
	_ plugin.LeftOutRecorder = (*host)(nil)
)

// leftOutTimeout bounds the audit write of a plugin left out.
const leftOutTimeout = 5 * time.Second

// RecordLeftOut writes a record of kind plugin, result deny, on a
// detached context.
func (h *host) RecordLeftOut(ctx context.Context, l plugin.LeftOut) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leftOutTimeout)
	defer cancel()
	in := map[string]any{"plugin": l.Plugin, "dir": l.Dir, "manifest": l.Manifest}
	return h.audit.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: audit.KindPlugin, Result: audit.ResultDeny,
		Reasons: []string{"left out: " + l.Reason}, Input: in})
}

func (h *host) Logger() *slog.Logger    { return h.log }
func (h *host) Catalog() plugin.Catalog { return h.catalog }
func (h *host) Network() plugin.Network { return h.network }

var _ plugin.Network = (*guard.Network)(nil)

// The doors of a server built without guards: each refuses everything.
var (
	noNetwork  = plugin.Closed{Err: &plugin.DeniedError{Kind: audit.KindNetwork, Target: "any connection", Reasons: []string{"this server has no network guard"}}}
	noFiles    = plugin.Closed{Err: &plugin.DeniedError{Kind: audit.KindFilesystem, Target: "any path", Reasons: []string{"this server has no filesystem guard"}}}
	noCommands = plugin.Closed{Err: &plugin.DeniedError{Kind: audit.KindCommand, Target: "any command", Reasons: []string{"this server has no command guard"}}}
)

type catalog struct {
	pipe *pipeline
	// sorted are the entries by name, made once per tool table (a change
	// of tools publishes a new one).
	sorted atomic.Pointer[sortedEntries]
}

// sortedEntries are the entries of the tool table src, by name.
type sortedEntries struct {
	src     *map[string]*registeredTool
	entries []plugin.Entry
	// pinned are the tools with a pinned definition, in name order: its
	// state can change between calls with no new table.
	pinned []*registeredTool
}

var (
	_ plugin.Catalog     = (*catalog)(nil)
	_ plugin.CatalogView = (*catalog)(nil)
)

// Entries returns the tools sorted by name; the caller may keep and
// change the slice.
func (c *catalog) Entries() []plugin.Entry {
	return slices.Clone(c.current().entries)
}

// current is the sorted entries of the tool table in force.
func (c *catalog) current() *sortedEntries {
	src := c.pipe.tools.m.Load()
	if e := c.sorted.Load(); e != nil && e.src == src {
		return e
	}
	var tools map[string]*registeredTool
	if src != nil {
		tools = *src
	}
	e := &sortedEntries{src: src, entries: make([]plugin.Entry, 0, len(tools))}
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		t := tools[name]
		e.entries = append(e.entries, plugin.Entry{Tool: t.Tool, Plugin: t.plugin, PluginVersion: t.pluginVersion})
		if t.Definition != nil {
			e.pinned = append(e.pinned, t)
		}
	}
	c.sorted.Store(e)
	return e
}

// catalogView is the token of View: a tool table (a published table is
// never changed, and its address is not reused while a token holds it),
// a policy snapshot, a caller, the count of failed evaluations (an
// answer that met one, computed between two views, is not kept) and the
// state of every pinned definition, with the count of definition changes
// (a change and back between two views is seen).
type catalogView struct {
	tools    *map[string]*registeredTool
	gen      uint64
	client   plugin.Client
	protocol string
	failures uint64
	defs     string // definitionStates of the pinned tools
	changes  uint64 // plugin.DefinitionChanges before defs was read
}

// View implements plugin.CatalogView: what Entries and Permitted answer
// depends on the tool table, the policy snapshot, the caller and the
// state of each pinned definition (an input of the decision) only, unless
// the decider does not tell its snapshots apart. A Permitted that could
// not evaluate the policy denies, and changes the view: the answer it
// went into is not kept.
func (c *catalog) View(ctx context.Context, call *plugin.Call) (any, bool) {
	e := c.current()
	if e.src == nil {
		return nil, false
	}
	p := c.pipe
	gen := p.generationFor(p.pin(ctx))
	if gen == 0 || gen != p.generation() {
		return nil, false
	}
	// The count of definition changes is read before the states: a
	// change seen while an answer is computed moves it, even when the
	// states are back as they were by the end.
	v := catalogView{tools: e.src, gen: gen, failures: p.permitFailures.Load(), changes: plugin.DefinitionChanges()}
	v.defs = definitionStates(e.pinned)
	if call != nil {
		v.client, v.protocol = call.Client, call.ProtocolVersion
	}
	return v, true
}

// definitionStates is the state of each tool's pinned definition, asked
// of its plugin now, as one comparable string ("" for none).
func definitionStates(tools []*registeredTool) string {
	if len(tools) == 0 {
		return ""
	}
	var b strings.Builder
	for _, t := range tools {
		d := definitionOf(t)
		b.WriteString(t.Name)
		if d.Changed {
			b.WriteString("\x00changed\x00")
		} else {
			b.WriteString("\x00same\x00")
		}
		b.WriteString(d.Hash)
		b.WriteByte(0)
		b.WriteString(d.Pinned)
		b.WriteByte(0)
	}
	return b.String()
}

// Permitted asks the tools decision point whether call's client may use
// tool, with empty arguments: what the policy says about the tool itself.
func (c *catalog) Permitted(ctx context.Context, call *plugin.Call, tool string) (bool, []string) {
	var id identity
	if call != nil {
		id.client, id.protocol = call.Client, call.ProtocolVersion
	}
	return c.pipe.permitted(ctx, id, tool)
}

// listFilter leaves out of tools/list the tools the policy refuses the
// caller whatever the arguments (tools.allowed, tools.denied, user rules
// on the tool or the client): offering a tool that will always be refused
// only invites refused calls. The decision at call time stays
// authoritative.
func (s *Server) listFilter(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		lr, ok := res.(*mcp.ListToolsResult)
		if method != "tools/list" || err != nil || !ok {
			return res, err
		}
		r, ok := req.(request)
		if !ok {
			return res, err
		}
		id := s.pipe.sessions.identify(r)
		kept := lr.Tools[:0:0]
		var names []string
		for _, t := range lr.Tools {
			if allowed, _ := s.pipe.permitted(ctx, id, t.Name); allowed {
				kept = append(kept, t)
				names = append(names, t.Name)
			}
		}
		if ss, ok := req.GetSession().(*mcp.ServerSession); ok && lr.NextCursor == "" {
			slices.Sort(names)
			s.pipe.sessions.listed(ss, id, names)
		}
		out := *lr
		out.Tools = kept
		// The list depends on who asks and on the policy in force: only
		// this client may cache it, and not for long.
		out.CacheScope, out.TTLMs = "private", 0
		return &out, nil
	}
}
