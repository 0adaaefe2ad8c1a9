package engine

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Point is a decision point: one Rego package under data.mcp.
type Point string

// The decision points.
const (
	Tools      Point = "tools"
	Network    Point = "network"
	Filesystem Point = "filesystem"
	Commands   Point = "commands"
)

// Points lists every decision point.
var Points = []Point{Tools, Network, Filesystem, Commands}

// Path is the decision's path in the decision-log sense, e.g.
// "mcp/tools/decision".
func (p Point) Path() string { return "mcp/" + string(p) + "/decision" }

// DefaultTimeout bounds one decision when [Config.Timeout] is zero.
const DefaultTimeout = 250 * time.Millisecond

// Config is everything a snapshot is built from.
type Config struct {
	// Modules maps a file name to Rego source: the built-in modules.
	Modules map[string]string
	// UserModules maps a file name to Rego source: the policy's own
	// modules, compiled with the built-in ones. They may only tighten a
	// decision (see [ErrUserModule]); anything else fails the build.
	UserModules map[string]string
	// Data is the policy document, stored at data.mcp.policy.
	Data map[string]any
	// Capabilities, if non-nil, restricts the built-ins policies may call.
	Capabilities *ast.Capabilities
	// Timeout bounds each decision; zero means DefaultTimeout.
	Timeout time.Duration
	// Clock, if non-nil, is the time each evaluation gives time.now_ns
	// and the other time built-ins; nil means the system clock. Tests
	// set it to move a policy's time without waiting. (Built-ins that
	// verify certificates read the system clock regardless.)
	Clock func() time.Time
	// Revision, when not nil, names the policy (a bundle's revision,
	// which may be ""): every decision of the engine built from this
	// configuration carries it, so a record names the policy that
	// decided, whichever is in force when it is written.
	Revision *string
}

// Decision is the answer of one decision point.
type Decision struct {
	Allow   bool
	Reasons []string
	// Revision is the Config.Revision of the policy that decided.
	Revision *string
}

// Engine answers policy decisions from the current snapshot.
type Engine struct {
	snap atomic.Pointer[snapshot]
	// ready is closed once the first snapshot of an engine from [Start]
	// is in force or its build failed (err); nil for [New]. built is
	// closed once every part of that snapshot is compiled, or one failed
	// (partErr).
	ready   chan struct{}
	err     error
	built   chan struct{}
	partErr error
}

// generations numbers snapshots across all engines.
var generations atomic.Uint64

type snapshot struct {
	gen      uint64
	revision *string // Config.Revision
	timeout  time.Duration
	clock    func() time.Time // Config.Clock
	// c holds the compiled parts (parts.go): each decision point's
	// queries, memo and stability, and the audit masks.
	c *compiled
	// noMemo turns the decision memos off (tests compare with them).
	noMemo bool

	store storage.Store
	cache *policyCache
	// txn is one read transaction for the snapshot's life: the store is
	// never written after the snapshot is built, so every evaluation
	// shares it.
	txn storage.Transaction
}

type queries struct {
	// allow is the compiled body `mcp_allow = data.mcp.<point>.allow`,
	// evaluated directly by topdown on the hot path.
	allow ast.Body
	// decision is the compiled body `mcp_decision =
	// data.mcp.<point>.decision`, evaluated the same way on a deny, for
	// its reasons.
	decision ast.Body
}

// allowVar binds the value of the allow rule in the hot-path query;
// decisionVar, the decision object in the deny path's.
var (
	allowVar    = ast.Var("mcp_allow")
	decisionVar = ast.Var("mcp_decision")
)

// New compiles cfg into the first snapshot.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	s, err := build(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e := &Engine{}
	e.snap.Store(s)
	return e, nil
}

// Start compiles cfg into the first snapshot in the background and
// returns at once, so that a server can do the rest of its start (and
// its handshake) meanwhile. Until the snapshot is in force, every use of
// the engine waits for it: a decision is never taken without the
// compiled policy. If the build fails, [Engine.Wait] returns its error
// and every decision is a deny wrapping [ErrNotReady].
func Start(ctx context.Context, cfg Config) *Engine {
	e := &Engine{ready: make(chan struct{}), built: make(chan struct{})}
	build := startBuild
	go func() {
		defer close(e.built)
		s, err := build(ctx, cfg)
		if err != nil {
			e.err = err
			close(e.ready)
			return
		}
		// A snapshot a reload (or Adopt) stored meanwhile is newer.
		stored := e.snap.CompareAndSwap(nil, s)
		close(e.ready)
		// The parts the first answers do not need compile on; the build
		// fails if one of them does (of the snapshot in force: one a
		// reload replaced already is not this build's to report).
		if stored {
			e.partErr = waitFor(context.WithoutCancel(ctx), s.c.parts)
		}
	}()
	return e
}

// startBuild is the build Start runs; tests hold it back.
var startBuild = buildFirst

// Wait returns once the first snapshot is in force and all of it is
// compiled, with the error of its build if it failed (an engine from
// [Start]), or with ctx's error if ctx ends first. It returns nil at
// once for an engine from [New].
func (e *Engine) Wait(ctx context.Context) error {
	if e.ready == nil {
		return nil
	}
	select {
	case <-e.built:
		if e.err != nil {
			return e.err
		}
		return e.partErr
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Reload compiles cfg and swaps it in. On error the current snapshot stays.
func (e *Engine) Reload(ctx context.Context, cfg Config) error {
	s, err := build(ctx, cfg)
	if err != nil {
		return err
	}
	e.snap.Store(s)
	return nil
}

// build compiles cfg into a snapshot, all of it.
func build(ctx context.Context, cfg Config) (*snapshot, error) {
	return buildParts(ctx, cfg, false)
}

// buildFirst compiles cfg into a snapshot that is returned once the
// parts a server's first answers need are compiled; the others compile
// on (parts.go).
func buildFirst(ctx context.Context, cfg Config) (*snapshot, error) {
	return buildParts(ctx, cfg, true)
}

func buildParts(ctx context.Context, cfg Config, first bool) (*snapshot, error) {
	c, pre := takePrebuilt(ctx, cfg)
	if c == nil {
		var err error
		if c, err = prepareModules(cfg, pre); err != nil {
			return nil, err
		}
		workers := runtime.GOMAXPROCS(0)
		if first {
			go c.compileParts(cfg.Capabilities, workers)
		} else {
			c.compileParts(cfg.Capabilities, workers)
		}
	}
	need := c.parts
	if first {
		need = c.first()
	}
	if err := waitFor(ctx, need); err != nil {
		return nil, err
	}
	data := map[string]any{"mcp": map[string]any{"policy": cfg.Data}}
	store := inmem.NewFromObjectWithOpts(data,
		inmem.OptRoundTripOnWrite(true),
		inmem.OptReturnASTValuesOnRead(true))

	policyValue, err := ast.InterfaceToValue(cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: policy data: %w", ErrCompile, err)
	}
	s := &snapshot{gen: generations.Add(1), revision: cfg.Revision, timeout: cfg.Timeout, clock: cfg.Clock, c: c,
		store: store, cache: &policyCache{root: policyValue}}
	if s.txn, err = store.NewTransaction(ctx); err != nil {
		return nil, fmt.Errorf("%w: open store: %w", ErrCompile, err)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	return s, nil
}

// prepareModules parses and checks cfg's modules and plans their parts
// (parts.go), none compiled yet. pre, when not nil, is cfg.Modules parsed
// already (by a prebuild, with the same capabilities), without error.
func prepareModules(cfg Config, pre map[string]*ast.Module) (*compiled, error) {
	parsed := make(map[string]*ast.Module, len(cfg.Modules)+len(cfg.UserModules))
	builtin, user := map[string]*ast.Module{}, map[string]*ast.Module{}
	toParse := []map[string]string{cfg.Modules, cfg.UserModules}
	into := []map[string]*ast.Module{builtin, user}
	if pre != nil {
		for name, m := range pre {
			parsed[name], builtin[name] = m, m
		}
		toParse, into = toParse[1:], into[1:]
	}
	parses := parseModules(cfg.Capabilities, toParse...)
	for _, p := range parses {
		if _, dup := parsed[p.name]; dup {
			return nil, fmt.Errorf("%w: %s: module given twice", ErrCompile, p.name)
		}
		if p.err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCompile, p.err)
		}
		if err := checkPackage(p.name, p.m); err != nil {
			return nil, err
		}
		parsed[p.name], into[p.set][p.name] = p.m, p.m
	}
	if err := checkUserModules(builtin, user, cfg.Capabilities); err != nil {
		return nil, err
	}
	c := planParts(builtin, user)
	c.builtinMasks = onlyBuiltinMasks(cfg, parsed)
	return c, nil
}

// parsedModule is one module parsed by parseModules: its name, the
// index of its set, and the module or the error.
type parsedModule struct {
	name string
	set  int
	m    *ast.Module
	err  error
}

// parseModules parses the modules of sets side by side (parsing is most
// of a start's compile) and returns them in order, set by set and by
// name within a set: the first problem taken from them is the one
// parsing them one after the other finds.
func parseModules(caps *ast.Capabilities, sets ...map[string]string) []parsedModule {
	return parseModulesOn(runtime.GOMAXPROCS(0), caps, sets...)
}

// parseModulesOn is parseModules on at most workers goroutines.
func parseModulesOn(workers int, caps *ast.Capabilities, sets ...map[string]string) []parsedModule {
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	if caps != nil {
		opts.Capabilities = caps
	}
	var out []parsedModule
	var srcs []string
	for i, set := range sets {
		for _, name := range slices.Sorted(maps.Keys(set)) {
			out = append(out, parsedModule{name: name, set: i})
			srcs = append(srcs, set[name])
		}
	}
	inParallel(len(out), workers, func(i int) {
		out[i].m, out[i].err = ast.ParseModuleWithOpts(out[i].name, srcs[i], opts)
	})
	return out
}

// checkPackage keeps user modules out of the policy data and outside the
// mcp namespace, where they could shadow what the engine reads.
func checkPackage(name string, m *ast.Module) error {
	path := m.Package.Path
	if len(path) < 2 || !path[1].Equal(ast.InternedTerm("mcp")) {
		return fmt.Errorf("%w: %s: package %s is outside data.mcp", ErrCompile, name, path)
	}
	if len(path) >= 3 && path[2].Equal(ast.InternedTerm("policy")) {
		return fmt.Errorf("%w: %s: package %s would shadow the policy data", ErrCompile, name, path)
	}
	return nil
}

// compileBinding compiles the query `v = ref` for topdown.
func compileBinding(comp *ast.Compiler, v ast.Var, ref string) (ast.Body, error) {
	body := ast.NewBody(ast.Equality.Expr(ast.NewTerm(v), ast.MustParseTerm(ref)))
	compiled, err := comp.QueryCompiler().Compile(body)
	if err != nil {
		return nil, fmt.Errorf("%w: compile %s: %w", ErrCompile, ref, err)
	}
	return compiled, nil
}

// Generation identifies the snapshot in force; it changes on every
// successful Reload. Callers memoising decisions key them on it, and
// only on StableGeneration's.
// It waits for the first snapshot of an engine from [Start], and is 0 if
// that build failed.
func (e *Engine) Generation() uint64 {
	if s := e.current(context.Background()); s != nil {
		return s.gen
	}
	return 0
}

// StableGeneration is Generation when the decisions of point in the
// snapshot in force are a function of their input (its rules use no
// `with` and call no built-in that reads the clock, chance or the
// network), and 0 when they are not: a caller may keep a decision of
// point under its whole input for the generation, and must not when it
// is 0. The snapshot of a call pinned to an older one (Pin) has another
// generation (GenerationFor).
func (e *Engine) StableGeneration(point Point) uint64 {
	s := e.current(context.Background())
	if s == nil {
		return 0
	}
	// A part still compiling: not known stable yet.
	if p := s.c.byPoint[point]; p == nil || !p.ready() || !p.stable[point] {
		return 0
	}
	return s.gen
}

// Decide evaluates point for input under the decision deadline. Any
// failure is a deny carrying an error that wraps [ErrEval].
func (e *Engine) Decide(ctx context.Context, point Point, input ast.Value) (Decision, error) {
	s := e.current(ctx)
	if s == nil {
		return e.notCompiled(ctx, point)
	}
	p, d, err := s.part(ctx, point)
	if p == nil {
		return d, err
	}
	return s.stamp(s.memoised(ctx, p, point, valueInput{input}, false, func(v ast.Value) (Decision, error) { return s.decide(ctx, p, point, v) }))
}

// DecideTool is Decide(ctx, Tools, in.Value()), building the input
// document only when the decision is evaluated (not memoised).
func (e *Engine) DecideTool(ctx context.Context, in ToolInput) (Decision, error) {
	s := e.current(ctx)
	if s == nil {
		return e.notCompiled(ctx, Tools)
	}
	p, d, err := s.part(ctx, Tools)
	if p == nil {
		return d, err
	}
	return s.stamp(s.memoised(ctx, p, Tools, in, false, func(v ast.Value) (Decision, error) { return s.decide(ctx, p, Tools, v) }))
}

// RefuseTool is Refusal(ctx, Tools, in.Value()), building the input
// document only when the decision is evaluated (not memoised).
func (e *Engine) RefuseTool(ctx context.Context, in ToolInput) (Decision, error) {
	s := e.current(ctx)
	if s == nil {
		return e.notCompiled(ctx, Tools)
	}
	p, d, err := s.part(ctx, Tools)
	if p == nil {
		return d, err
	}
	return s.stamp(s.refusal(ctx, p, Tools, in))
}

// notCompiled is the deny of a decision asked for without a snapshot (see
// Start).
func (e *Engine) notCompiled(ctx context.Context, point Point) (Decision, error) {
	return denied("policy not compiled"), fmt.Errorf("%w: %s: %w", ErrEval, point, e.notReady(ctx))
}

// part is the part that answers point, once compiled. Without it, it
// returns the deny to answer (a point this engine does not have, or a
// part that failed or was not compiled before ctx ended).
func (s *snapshot) part(ctx context.Context, point Point) (*part, Decision, error) {
	p := s.c.byPoint[point]
	if p == nil {
		return nil, denied("unknown decision point"), fmt.Errorf("%w: %q", ErrUnknownPoint, point)
	}
	if err := p.wait(ctx); err != nil {
		d, err := s.stamp(denied("policy not compiled"), fmt.Errorf("%w: %s: %w: %w", ErrEval, point, ErrNotReady, err))
		return nil, d, err
	}
	return p, Decision{}, nil
}

// decide evaluates point's allow rule for input, and its decision object
// when it does not allow.
func (s *snapshot) decide(ctx context.Context, p *part, point Point, input ast.Value) (Decision, error) {
	q := p.queries[point]
	ok, err := s.allow(ctx, p.comp, q.allow, input)
	if err != nil {
		return denied("policy evaluation failed"), fmt.Errorf("%w: %s: %w", ErrEval, point, err)
	}
	if ok {
		return Decision{Allow: true}, nil
	}
	v, n, err := s.eval(ctx, p.comp, q.decision, decisionVar, input, true)
	if err != nil {
		return denied("policy evaluation failed"), fmt.Errorf("%w: %s: %w", ErrEval, point, err)
	}
	d, ok := decode(v, n)
	if !ok {
		return denied("policy decision is undefined"), fmt.Errorf("%w: %s: decision undefined or malformed", ErrEval, point)
	}
	// The allow rule is authoritative: a decision object that disagrees
	// with it cannot open a door.
	d.Allow = false
	if len(d.Reasons) == 0 {
		d.Reasons = []string{"denied by policy"}
	}
	return d, nil
}

// Refusal is the decision of point for input when the caller refuses
// whatever the policy answers (a call of a tool that is not registered):
// only the decision object is evaluated, for its reasons, and it is
// always a deny. Any failure is a deny carrying an error that wraps
// [ErrEval], as with Decide.
func (e *Engine) Refusal(ctx context.Context, point Point, input ast.Value) (Decision, error) {
	s := e.current(ctx)
	if s == nil {
		return e.notCompiled(ctx, point)
	}
	p, d, err := s.part(ctx, point)
	if p == nil {
		return d, err
	}
	return s.stamp(s.refusal(ctx, p, point, valueInput{input}))
}

// stamp names s's policy in d.
func (s *snapshot) stamp(d Decision, err error) (Decision, error) {
	d.Revision = s.revision
	return d, err
}

func (s *snapshot) refusal(ctx context.Context, p *part, point Point, in decisionInput) (Decision, error) {
	q := p.queries[point]
	return s.memoised(ctx, p, point, in, true, func(input ast.Value) (Decision, error) {
		v, n, err := s.eval(ctx, p.comp, q.decision, decisionVar, input, true)
		if err != nil {
			return denied("policy evaluation failed"), fmt.Errorf("%w: %s: %w", ErrEval, point, err)
		}
		d, ok := decode(v, n)
		if !ok {
			return denied("policy decision is undefined"), fmt.Errorf("%w: %s: decision undefined or malformed", ErrEval, point)
		}
		d.Allow = false
		return d, nil
	})
}

// allow evaluates a compiled allow body with topdown directly: the hot
// path of every decision. Only a boolean true allows.
func (s *snapshot) allow(ctx context.Context, comp *ast.Compiler, body ast.Body, input ast.Value) (bool, error) {
	v, n, err := s.eval(ctx, comp, body, allowVar, input, true)
	if err != nil {
		return false, err
	}
	return n == 1 && v != nil && v.Compare(ast.Boolean(true)) == 0, nil
}

// eval evaluates a body `v = ref` compiled by comp with topdown directly
// and returns the value bound to v in the last result and the number of
// results. The deadline cancels the evaluation without a timer or a
// goroutine per call. strict makes a failing built-in an error (as
// decisions want) instead of leaving its expression undefined.
func (s *snapshot) eval(ctx context.Context, comp *ast.Compiler, body ast.Body, v ast.Var, input ast.Value, strict bool) (ast.Value, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	c := deadlines.Get().(*deadline)
	c.at = time.Now().Add(s.timeout)
	defer c.release()
	q := topdown.NewQuery(body).
		WithCompiler(comp).
		WithStore(s.store).
		WithTransaction(s.txn).
		WithBaseCache(s.cache).
		WithMetrics(metrics.NoOp()).
		WithStrictBuiltinErrors(strict).
		WithCancel(c)
	if input != nil {
		q = q.WithInput(ast.NewTerm(input))
	}
	if s.clock != nil {
		q = q.WithTime(s.clock())
	}
	var (
		value   ast.Value
		results int
	)
	err := q.Iter(ctx, func(qr topdown.QueryResult) error {
		results++
		value = nil
		if t, ok := qr[v]; ok {
			value = t.Value
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return value, results, nil
}

// deadline cancels an evaluation once its time is up. topdown polls
// Cancelled at every step; the clock is read on every 32nd poll, so a
// decision needs no timer and no goroutine.
type deadline struct {
	at    time.Time
	polls atomic.Uint32
	done  atomic.Bool
}

var _ topdown.Cancel = (*deadline)(nil)

// deadlines recycles deadline values: topdown holds one only while a
// query runs.
var deadlines = sync.Pool{New: func() any { return new(deadline) }}

func (d *deadline) release() {
	d.polls.Store(0)
	d.done.Store(false)
	deadlines.Put(d)
}

func (d *deadline) Cancel() { d.done.Store(true) }

func (d *deadline) Cancelled() bool {
	if d.done.Load() {
		return true
	}
	if d.polls.Add(1)%32 == 0 && time.Now().After(d.at) {
		d.done.Store(true)
		return true
	}
	return false
}

func denied(reason string) Decision { return Decision{Reasons: []string{reason}} }

// decode reads a decision object: exactly one result, an object whose
// reasons are strings (a set or an array; other members are ignored).
func decode(v ast.Value, results int) (Decision, bool) {
	if results != 1 || v == nil {
		return Decision{}, false
	}
	j, err := ast.JSON(v)
	if err != nil {
		return Decision{}, false
	}
	obj, ok := j.(map[string]any)
	if !ok {
		return Decision{}, false
	}
	var d Decision
	d.Allow, _ = obj["allow"].(bool)
	switch rr := obj["reasons"].(type) {
	case []any:
		for _, r := range rr {
			if s, ok := r.(string); ok {
				d.Reasons = append(d.Reasons, s)
			}
		}
	}
	return d, true
}

// Warm evaluates every decision point a few times with an empty input, so
// the first real requests do not pay for filling the evaluator's caches.
// Its answers are discarded.
func (e *Engine) Warm(ctx context.Context) {
	in := ast.NewObject()
	for range 3 {
		for _, p := range Points {
			_, _ = e.Decide(ctx, p, in)
		}
	}
}

// inParallel runs f(0) … f(n-1) on up to GOMAXPROCS goroutines and
// returns when all have returned.
func inParallel(n, workers int, f func(i int)) {
	workers = min(n, workers)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}
