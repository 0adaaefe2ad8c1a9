package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Launcher starts the upstream's process; each call is a fresh process,
// which lives until it is killed (ctx bounds only the start). The
// server's launcher door ([plugin.Launcher]) with the server's
// [plugin.LaunchSpec] is one: see [Door].
type Launcher interface {
	Launch(ctx context.Context) (plugin.Process, error)
}

// Door is the Launcher that starts Spec through a [plugin.Launcher].
type Door struct {
	Launcher plugin.Launcher
	Spec     *plugin.LaunchSpec
}

var _ Launcher = Door{}

// Launch implements Launcher.
func (d Door) Launch(ctx context.Context) (plugin.Process, error) {
	return d.Launcher.Launch(context.WithoutCancel(ctx), d.Spec)
}

// Definition is what a tool tells the model, as pinned.
type Definition struct {
	Tool         string // the name offered to clients (prefix included)
	Name         string // the upstream's own name
	Description  string
	InputSchema  json.RawMessage
	OutputSchema json.RawMessage
	// Title and Annotations are offered to clients too (clients may
	// approve calls on hints such as readOnlyHint), so they are pinned.
	Title       string
	Annotations json.RawMessage
}

// Pins remembers the tool definitions the operator accepted.
type Pins interface {
	// Observe is told of the definitions an upstream offers, all of one
	// listing at once and in its order, at every listing, and returns
	// each one's hash, or its error (ErrLeftOut leaves the tool out; any
	// other fails the listing). initial is true at the first listing of
	// the upstream (which may pin a tool never seen: trust on first use),
	// false at later ones (a restart, list_changed), where a tool never
	// seen must not be trusted until approved.
	Observe(ctx context.Context, server string, defs []Definition, initial bool) (hashes []string, errs []error)
	// State compares the hash of the definition offered now with the pin.
	State(tool, hash string) plugin.DefinitionState
}

// Config describes one upstream server.
type Config struct {
	Name     string // servers.<name>
	Prefix   string // put before each tool's name
	Version  string // our version, sent as clientInfo
	Launcher Launcher
	Pins     Pins
	Logger   *slog.Logger
	// StartTimeout bounds a start: the process, the handshake and the
	// listing; zero means 60 s.
	StartTimeout time.Duration
	// FirstWait bounds how long New waits for the first start: past it,
	// New returns (ErrSlowStart) while the start goes on in the
	// background, so that one slow or hung server does not hold up the
	// server's own start; zero means 5 s.
	FirstWait time.Duration
	// StartFailed, when set, is told of each start that fails (the first
	// one and every later one) after its process was launched: in the
	// handshake, the listing or at the start's deadline (not when Close
	// or the context given to New cancels it).
	StartFailed func(err error)
	// MinBackoff and MaxBackoff bound the wait before a restart; zero
	// means 250 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
}

// MaxResultText caps the text of a result passed on from an upstream.
const MaxResultText = 1 << 20

// stableAfter is how long a process must have run for the backoff to go
// back to its minimum.
const stableAfter = time.Minute

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("upstream: closed")

// ErrNotStarted wraps the error of a failed first start, which [New]
// returns together with an Upstream that keeps trying.
var ErrNotStarted = errors.New("upstream: the first start failed; retrying with backoff")

// ErrSlowStart, from [New] with the Upstream, says the first start did
// not end within Config.FirstWait: it goes on in the background, and its
// tools are offered once it is up (or it is retried as after
// [ErrNotStarted]).
var ErrSlowStart = errors.New("its first start goes on in the background")

// ErrLeftOut, from Pins.Observe, leaves the tool out of the listing (it
// is neither offered nor pinned); the rest of the listing stands.
var ErrLeftOut = errors.New("upstream: tool left out")

var toolName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`) })

// Upstream is one upstream server, offered as a plugin.
type Upstream struct {
	cfg Config
	log *slog.Logger

	listing sync.Mutex // one listing at a time

	mu      sync.Mutex
	tools   []plugin.Tool      // as of the last listing
	session *mcp.ClientSession // nil while down
	wire    *wire              // the session's connection; calls go through it
	proc    plugin.Process
	down    string            // why it is down
	hashes  map[string]string // upstream tool name -> hash of the definition offered now
	offered bool              // a listing was offered: later ones are not initial
	closed  bool
	watch   func()        // the server's, told when tools change
	calls   callsInFlight // for the notifications of calls in flight
	// failedStarts counts the starts in a row that failed after their
	// launch; a start that succeeds resets it (see logStderr).
	failedStarts int

	// relisting is set while a relist runs; dirty when list_changed came
	// meanwhile, which makes it run once more. relists counts them.
	relisting, dirty bool
	relists          int

	stop chan struct{}
	done chan struct{}
}

var (
	_ plugin.Plugin   = (*Upstream)(nil)
	_ plugin.Closer   = (*Upstream)(nil)
	_ plugin.Changing = (*Upstream)(nil)
	_ plugin.Pending  = (*Upstream)(nil)
)

// New starts the upstream, lists its tools and supervises it until Close.
//
// When the first start fails, New returns an error wrapping
// [ErrNotStarted] together with the Upstream, which offers no tools yet
// and starts the server again with the supervisor's backoff; once it is
// up, its tools are offered and the server is told (Watch). When the
// first start takes longer than Config.FirstWait, New returns
// [ErrSlowStart] with the Upstream, and the start goes on. Any other
// error comes with a nil Upstream.
func New(ctx context.Context, cfg Config) (*Upstream, error) {
	if cfg.Launcher == nil || cfg.Pins == nil {
		return nil, errors.New("upstream: a launcher and pins are required")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.FirstWait <= 0 {
		cfg.FirstWait = 5 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	u := &Upstream{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{}), hashes: map[string]string{}}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.log = u.log.With("upstream", cfg.Name)
	// The first start, which Close cancels.
	startCtx, cancel := context.WithCancel(ctx)
	first := make(chan started, 1)
	go func() {
		defer cancel()
		var r started
		r.cs, r.w, r.proc, r.listed, r.err = u.start(startCtx)
		first <- r
	}()
	go func() {
		select {
		case <-u.stop:
			cancel()
		case <-startCtx.Done():
		}
	}()
	wait := time.NewTimer(cfg.FirstWait)
	defer wait.Stop()
	select {
	case r := <-first:
		if r.err != nil {
			u.down = "its first start failed: " + r.err.Error()
			go u.supervise(nil, nil)
			return u, fmt.Errorf("%w: %w", ErrNotStarted, r.err)
		}
		u.adopt(r)
		go u.supervise(r.cs, r.proc)
		return u, nil
	case <-wait.C:
		u.mu.Lock()
		u.down = fmt.Sprintf("its first start is taking longer than %s and goes on", cfg.FirstWait)
		u.mu.Unlock()
		go u.lateFirst(first)
		return u, fmt.Errorf("upstream %s: not up within %s; %w", cfg.Name, cfg.FirstWait, ErrSlowStart)
	}
}

// started is the outcome of a start.
type started struct {
	cs     *mcp.ClientSession
	w      *wire
	proc   plugin.Process
	listed []listedTool
	err    error
}

// adopt makes r, a start that succeeded, the running one and offers its
// tools; false (and r ended) when the Upstream was closed meanwhile.
func (u *Upstream) adopt(r started) bool {
	// A listing of an old session still under way is offered first,
	// then this one.
	u.listing.Lock()
	defer u.listing.Unlock()
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		r.cs.Close()
		r.proc.Kill()
		r.proc.Wait()
		return false
	}
	u.session, u.wire, u.proc, u.down = r.cs, r.w, r.proc, ""
	u.failedStarts = 0
	u.mu.Unlock()
	u.offer(r.listed)
	return true
}

// lateFirst waits for a first start New stopped waiting for, then
// supervises as New would have: its tools are offered, and the server
// told, once it is up; a failed start is retried with backoff.
func (u *Upstream) lateFirst(first <-chan started) {
	r := <-first
	if r.err != nil {
		u.mu.Lock()
		closed := u.closed
		u.down = "its first start failed: " + r.err.Error()
		u.mu.Unlock()
		if closed {
			close(u.done)
			return
		}
		u.log.Error("upstream server not started; it is being retried", "err", r.err)
		u.supervise(nil, nil)
		return
	}
	if !u.adopt(r) {
		close(u.done)
		return
	}
	u.log.Info("upstream server started after the server's own start; offering its tools", "tools", len(r.listed))
	u.changed()
	u.supervise(r.cs, r.proc)
}

// startFailed counts a start that failed after its launch and tells
// cfg.StartFailed of it, unless the start was cancelled (ctx is the
// start's).
func (u *Upstream) startFailed(ctx context.Context, err error) {
	if errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	u.mu.Lock()
	u.failedStarts++
	u.mu.Unlock()
	if u.cfg.StartFailed != nil {
		u.cfg.StartFailed(err)
	}
}

// Info names the plugin after the server.
func (u *Upstream) Info() plugin.Info {
	return plugin.Info{Name: "upstream." + u.cfg.Name, Version: "1.0.0", Description: "tools of the upstream MCP server " + u.cfg.Name}
}

// Tools are the upstream's tools as of its last listing (none before
// its first start succeeds).
func (u *Upstream) Tools() []plugin.Tool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.tools)
}

// Watch implements plugin.Changing: changed is called after each listing
// (a start, a restart, notifications/tools/list_changed).
func (u *Upstream) Watch(changed func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.watch = changed
}

// changed tells the server the tools may have changed.
func (u *Upstream) changed() {
	u.mu.Lock()
	w := u.watch
	u.mu.Unlock()
	if w != nil {
		w()
	}
}

// Pending implements plugin.Pending: before the server's first start
// succeeds, a tool under its prefix is one it may serve.
func (u *Upstream) Pending(tool string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || u.session != nil || len(u.tools) > 0 || !strings.HasPrefix(tool, u.cfg.Prefix) {
		return ""
	}
	return fmt.Sprintf("upstream server %q has not come up yet (%s); it is being retried, try again shortly", u.cfg.Name, u.down)
}

// Close ends the process and the supervisor.
func (u *Upstream) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	close(u.stop)
	cs, proc := u.session, u.proc
	u.mu.Unlock()
	if cs != nil {
		cs.Close()
	}
	if proc != nil {
		proc.Kill()
	}
	select {
	case <-u.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("upstream %s: did not stop within 10s", u.cfg.Name)
	}
	return nil
}

// listedTool is a tool as the upstream listed it, with its hash.
type listedTool struct {
	tool *mcp.Tool
	def  Definition
	hash string
}

// start launches the process, connects and lists its tools. The
// session (the handshake, tools/list, the upstream's notifications) and
// our calls share one connection: the wire reads the process's stdout.
func (u *Upstream) start(ctx context.Context) (*mcp.ClientSession, *wire, plugin.Process, []listedTool, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.StartTimeout)
	defer cancel()
	proc, err := u.cfg.Launcher.Launch(ctx)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("upstream %s: starting: %w", u.cfg.Name, err)
	}
	// A start cancelled (Close) or past its deadline ends its process,
	// which ends whatever of the start still waits on it.
	keep := context.AfterFunc(ctx, proc.Kill)
	go u.logStderr(proc.Stderr())
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-secure", Version: u.cfg.Version}, &mcp.ClientOptions{
		ToolListChangedHandler:      func(context.Context, *mcp.ToolListChangedRequest) { u.listChanged() },
		LoggingMessageHandler:       u.relayLog,
		ProgressNotificationHandler: u.relayProgress,
	})
	w := newWire(proc.Stdin(), proc.Stdout(), u.log)
	cs, err := client.Connect(ctx, sdkTransport{w}, nil)
	if err != nil {
		// The connection closed under the handshake (not a refusal, not
		// the start's deadline or cancel, which end the process): the
		// upstream hung up, most likely by exiting.
		ended := errors.Is(err, mcp.ErrConnectionClosed) && ctx.Err() == nil
		w.close()
		err = fmt.Errorf("upstream %s: MCP handshake: %w%s", u.cfg.Name, err, exitNote(proc, ended))
		u.startFailed(ctx, err)
		return nil, nil, nil, nil, err
	}
	if ir := cs.InitializeResult(); ir != nil && ir.Capabilities != nil && ir.Capabilities.Logging != nil {
		// Servers of the Go SDK send nothing until a level is set.
		if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: relayLevel}); err != nil {
			u.log.Warn("the upstream refused logging/setLevel; its log messages may not arrive", "err", err)
		}
	}
	listed, err := u.list(ctx, cs)
	if err != nil {
		cs.Close()
		proc.Kill()
		proc.Wait()
		u.startFailed(ctx, err)
		return nil, nil, nil, nil, err
	}
	if !keep() {
		// Ended at the last moment: the start failed all the same.
		cs.Close()
		proc.Wait()
		err = fmt.Errorf("upstream %s: starting: %w", u.cfg.Name, ctx.Err())
		u.startFailed(ctx, err)
		return nil, nil, nil, nil, err
	}
	return cs, w, proc, listed, nil
}

// exitGrace is how long a process that hung up on the handshake is
// given to exit by itself, so that the error can say how it ended.
const exitGrace = time.Second

// exitNote ends proc, a process the handshake failed with, and tells how
// it ended when it exited by itself (ended: it hung up on the handshake)
// within exitGrace; else it is killed, and the note is empty. Its stderr
// is never part of the note (it may hold what it should not, and it is
// in the server's log already).
func exitNote(proc plugin.Process, ended bool) string {
	exited := make(chan int, 1)
	go func() {
		code, err := proc.Wait()
		if err != nil {
			code = -1
		}
		exited <- code
	}()
	if ended {
		t := time.NewTimer(exitGrace)
		defer t.Stop()
		select {
		case code := <-exited:
			if code < 0 {
				return ""
			}
			return fmt.Sprintf(" (the process exited with code %d before it answered; its stderr is in the server's log, as \"upstream stderr\" lines)", code)
		case <-t.C:
		}
	}
	proc.Kill()
	<-exited
	return ""
}

// list lists every tool (all pages), pins or compares each definition
// (offer records them as the hashes offered now).
func (u *Upstream) list(ctx context.Context, cs *mcp.ClientSession) ([]listedTool, error) {
	u.mu.Lock()
	initial := !u.offered
	u.mu.Unlock()
	var tools []*mcp.Tool
	var defs []Definition
	names := map[string]bool{}
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("upstream %s: tools/list: %w", u.cfg.Name, err)
		}
		if names[t.Name] {
			// Names are unique in a listing: a second definition of one
			// would be judged against the first's pin at every listing.
			u.log.Warn("upstream tool left out: its name was listed before in this listing", "tool", u.cfg.Prefix+t.Name)
			continue
		}
		names[t.Name] = true
		if len(defs) >= 1000 {
			return nil, fmt.Errorf("upstream %s: tools/list: more than 1000 tools", u.cfg.Name)
		}
		def := Definition{Tool: u.cfg.Prefix + t.Name, Name: t.Name, Description: t.Description, Title: t.Title}
		var err error
		if t.Annotations != nil {
			if def.Annotations, err = json.Marshal(t.Annotations); err != nil {
				return nil, fmt.Errorf("upstream %s: tool %q: annotations: %w", u.cfg.Name, t.Name, err)
			}
		}
		if def.InputSchema, err = json.Marshal(t.InputSchema); err != nil {
			return nil, fmt.Errorf("upstream %s: tool %q: input schema: %w", u.cfg.Name, t.Name, err)
		}
		if t.OutputSchema != nil {
			if def.OutputSchema, err = json.Marshal(t.OutputSchema); err != nil {
				return nil, fmt.Errorf("upstream %s: tool %q: output schema: %w", u.cfg.Name, t.Name, err)
			}
		}
		// A tool that cannot be offered is not pinned either: its
		// definition goes nowhere, the pins file included.
		if why := leftOut(def); why != "" {
			u.log.Warn("upstream tool left out: "+why, "tool", def.Tool)
			continue
		}
		tools, defs = append(tools, t), append(defs, def)
	}
	if len(defs) == 0 {
		return nil, nil
	}
	// One look at the pins for the whole listing.
	hashes, errs := u.cfg.Pins.Observe(ctx, u.cfg.Name, defs, initial)
	var out []listedTool
	for i, def := range defs {
		if errors.Is(errs[i], ErrLeftOut) {
			u.log.Warn("upstream tool left out", "tool", def.Tool, "err", errs[i])
			continue
		}
		if errs[i] != nil {
			return nil, fmt.Errorf("upstream %s: pinning %q: %w", u.cfg.Name, def.Name, errs[i])
		}
		out = append(out, listedTool{tool: tools[i], def: def, hash: hashes[i]})
	}
	return out, nil
}

// maxDefinition caps the definition of an upstream's tool (description,
// title, schemas and annotations together).
const maxDefinition = 256 << 10

// maxNesting caps how deep a tool's schemas and annotations nest: a
// schema nested deeper than any tool needs multiplies what shows it
// indented (tools diff) by its depth.
const maxNesting = 64

// nesting is how deep the arrays and objects of the JSON text raw nest.
func nesting(raw []byte) int {
	depth, most := 0, 0
	in, esc := false, false
	for _, c := range raw {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case in:
		case c == '[' || c == '{':
			depth++
			most = max(most, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return most
}

// leftOut says why a listed tool is not offered (nor pinned), or "".
func leftOut(d Definition) string {
	if !toolName().MatchString(d.Tool) {
		return "its name is not a plain MCP tool name"
	}
	if n := len(d.Description) + len(d.Title) + len(d.InputSchema) + len(d.OutputSchema) + len(d.Annotations); n > maxDefinition {
		return fmt.Sprintf("its definition is %d bytes, over %d KiB", n, maxDefinition>>10)
	}
	for _, raw := range []json.RawMessage{d.InputSchema, d.OutputSchema, d.Annotations} {
		if n := nesting(raw); n > maxNesting {
			return fmt.Sprintf("its definition nests %d levels deep, over %d", n, maxNesting)
		}
	}
	if _, err := plugin.CompileSchema(d.Tool, d.InputSchema); err != nil {
		return "its input schema does not compile: " + err.Error()
	}
	return ""
}

// offer turns a listing into the plugin's tools and the hashes of the
// definitions offered now.
func (u *Upstream) offer(listed []listedTool) {
	sort.Slice(listed, func(i, j int) bool { return listed[i].def.Tool < listed[j].def.Tool })
	var tools []plugin.Tool
	hashes := make(map[string]string, len(listed))
	for _, l := range listed {
		hashes[l.def.Name] = l.hash
	}
	for _, l := range listed {
		name := l.def.Tool
		state := u.definition(name, l.tool.Name, l.hash)
		t := plugin.Tool{
			Name:        name,
			Title:       l.tool.Title,
			Description: l.tool.Description,
			Category:    u.cfg.Name,
			InputSchema: l.def.InputSchema,
			Handler:     u.handler(l.tool.Name, state),
			// Every wait of a forwarded call ends with its context
			// (wire.call, wire.write).
			Bounded:    true,
			Definition: state,
		}
		if len(l.def.OutputSchema) > 0 {
			t.OutputSchema = l.def.OutputSchema
		}
		if a := l.tool.Annotations; a != nil {
			t.Annotations = &plugin.Annotations{Title: a.Title, ReadOnlyHint: a.ReadOnlyHint,
				DestructiveHint: a.DestructiveHint, IdempotentHint: a.IdempotentHint, OpenWorldHint: a.OpenWorldHint}
		}
		tools = append(tools, t)
	}
	u.mu.Lock()
	plugin.DefinitionChanging()
	u.tools, u.hashes, u.offered = tools, hashes, true
	u.mu.Unlock()
}

// definition reports the state of the tool's definition at decision
// time. hash is that of the definition offered with this tool (what
// clients were told): it must be the upstream's current one and the
// pinned one. Between a relist and the server's refresh, clients still
// see the definition registered before, which the pin does not cover
// when the upstream changed it meanwhile.
func (u *Upstream) definition(offered, name, hash string) func() plugin.DefinitionState {
	return func() plugin.DefinitionState {
		u.mu.Lock()
		h, ok := u.hashes[name]
		u.mu.Unlock()
		if !ok {
			// Gone from the upstream's listing (or not listed yet since a
			// restart): nothing the operator pinned is on offer.
			return plugin.DefinitionState{Changed: true, Hash: "", Pinned: ""}
		}
		st := u.cfg.Pins.State(offered, h)
		if h != hash {
			// Offered as one definition, the upstream's is another now.
			st.Changed = true
		}
		return st
	}
}

// listChanged handles notifications/tools/list_changed: at most one
// relist runs at a time, and notifications arriving while it runs make
// exactly one more, so an upstream cannot flood us with listings.
func (u *Upstream) listChanged() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.relisting {
		u.dirty = true
		return
	}
	u.relisting = true
	go func() {
		for {
			u.relist()
			u.mu.Lock()
			if !u.dirty || u.closed {
				u.relisting, u.dirty = false, false
				u.mu.Unlock()
				return
			}
			u.dirty = false
			u.mu.Unlock()
		}
	}()
}

// relist lists the tools again after notifications/tools/list_changed:
// each definition is observed as at start (a changed one is denied until
// approved), and the server is told, which announces the change to its
// sessions.
func (u *Upstream) relist() {
	u.listing.Lock()
	defer u.listing.Unlock()
	u.mu.Lock()
	cs := u.session
	u.relists++
	u.mu.Unlock()
	if cs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), u.cfg.StartTimeout)
	defer cancel()
	listed, err := u.list(ctx, cs)
	if err != nil {
		u.log.Warn("re-listing the upstream's tools failed", "err", err)
		return
	}
	u.mu.Lock()
	stale := u.session != cs // restarted meanwhile: that start listed
	u.mu.Unlock()
	if stale {
		return
	}
	u.offer(listed)
	u.log.Info("upstream tools re-listed after notifications/tools/list_changed", "tools", len(listed))
	u.changed()
}

// current is the connection to call through, or why there is none.
func (u *Upstream) current() (*wire, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, "the server is shutting down"
	}
	return u.wire, u.down
}
