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
	// is in force or its build failed (err); nil for [New].
	ready chan struct{}
	err   error
}

// generations numbers snapshots across all engines.
var generations atomic.Uint64

type snapshot struct {
	gen      uint64
	revision *string // Config.Revision
	timeout  time.Duration
	clock    func() time.Time // Config.Clock
	queries  map[Point]*queries
	// mask is the compiled body binding data.mcp.audit.mask, the audit
	// mask rules (see Mask).
	mask ast.Body
	// builtinMasks: the built-in mask rules are the only ones (see
	// maskMayMatch).
	builtinMasks bool
	// readsSession: some module may read input.session (sessionskip.go).
	readsSession bool
	// memos keep the decisions of the points whose decisions depend only
	// on named members of input (memo.go); nil for the others.
	memos map[Point]*decisionMemo
	// stable: the point's decisions are a function of its input and the
	// snapshot (memo.go), so callers may keep them (StableGeneration).
	stable map[Point]bool

	compiler *ast.Compiler
	store    storage.Store
	cache    *policyCache
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
	e := &Engine{ready: make(chan struct{})}
	build := startBuild
	go func() {
		defer close(e.ready)
		s, err := build(ctx, cfg)
		if err != nil {
			e.err = err
			return
		}
		// A snapshot a reload (or Adopt) stored meanwhile is newer.
		e.snap.CompareAndSwap(nil, s)
	}()
	return e
}

// startBuild is the build Start runs; tests hold it back.
var startBuild = build

// Wait returns once the first snapshot is in force, with the error of
// its build if it failed (an engine from [Start]), or with ctx's error
// if ctx ends first. It returns nil at once for an engine from [New].
func (e *Engine) Wait(ctx context.Context) error {
	if e.ready == nil {
		return nil
	}
	select {
	case <-e.ready:
		return e.err
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

func build(ctx context.Context, cfg Config) (*snapshot, error) {
	c, pre := takePrebuilt(ctx, cfg)
	if c == nil {
		var err error
		if c, err = compileModules(cfg, pre); err != nil {
			return nil, err
		}
	}
	data := map[string]any{"mcp": map[string]any{"policy": cfg.Data}}
	store := inmem.NewFromObjectWithOpts(data,
		inmem.OptRoundTripOnWrite(true),
		inmem.OptReturnASTValuesOnRead(true))

	policyValue, err := ast.InterfaceToValue(cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: policy data: %w", ErrCompile, err)
	}
	s := &snapshot{gen: generations.Add(1), revision: cfg.Revision, timeout: cfg.Timeout, clock: cfg.Clock, queries: c.queries,
		compiler: c.comp, store: store, cache: &policyCache{root: policyValue},
		mask: c.mask, builtinMasks: c.builtinMasks, readsSession: c.readsSession, memos: c.memos, stable: c.stable}
	if s.txn, err = store.NewTransaction(ctx); err != nil {
		return nil, fmt.Errorf("%w: open store: %w", ErrCompile, err)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	return s, nil
}

// compiled is what a build makes of a configuration's modules, whatever
// its data: the compiled modules, the queries of each decision point and
// of the mask, what the modules read, and empty decision memos.
type compiled struct {
	comp                       *ast.Compiler
	queries                    map[Point]*queries
	mask                       ast.Body
	builtinMasks, readsSession bool
	memos                      map[Point]*decisionMemo
	stable                     map[Point]bool
}

// compileModules parses, checks and compiles cfg's modules. pre, when
// not nil, is cfg.Modules parsed already (by a prebuild, with the same
// capabilities), without error.
func compileModules(cfg Config, pre map[string]*ast.Module) (*compiled, error) {
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
	comp := ast.NewCompiler().
		WithCapabilities(cfg.Capabilities).
		WithEnablePrintStatements(false)
	if comp.Compile(parsed); comp.Failed() {
		return nil, fmt.Errorf("%w: %w", ErrCompile, comp.Errors)
	}
	c := &compiled{comp: comp, queries: map[Point]*queries{}}
	for _, p := range Points {
		q := &queries{}
		var err error
		if q.allow, err = compileBinding(comp, allowVar, "data.mcp."+string(p)+".allow"); err != nil {
			return nil, err
		}
		if q.decision, err = compileBinding(comp, decisionVar, "data.mcp."+string(p)+".decision"); err != nil {
			return nil, err
		}
		c.queries[p] = q
	}
	var err error
	if c.mask, err = compileMask(comp); err != nil {
		return nil, err
	}
	c.builtinMasks = onlyBuiltinMasks(cfg, parsed)
	c.readsSession = readsSession(comp)
	c.memos, c.stable = map[Point]*decisionMemo{}, map[Point]bool{}
	for _, p := range Points {
		m, stable := newMemo(comp, ast.MustParseRef("data.mcp."+string(p)))
		if m != nil {
			c.memos[p] = m
		}
		c.stable[p] = stable
	}
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
	if s == nil || !s.stable[point] {
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
	q, ok := s.queries[point]
	if !ok {
		return denied("unknown decision point"), fmt.Errorf("%w: %q", ErrUnknownPoint, point)
	}
	return s.stamp(s.memoised(ctx, point, valueInput{input}, false, func(v ast.Value) (Decision, error) { return s.decide(ctx, point, q, v) }))
}

// DecideTool is Decide(ctx, Tools, in.Value()), building the input
// document only when the decision is evaluated (not memoised).
func (e *Engine) DecideTool(ctx context.Context, in ToolInput) (Decision, error) {
	s := e.current(ctx)
	if s == nil {
		return e.notCompiled(ctx, Tools)
	}
	q := s.queries[Tools]
	return s.stamp(s.memoised(ctx, Tools, in, false, func(v ast.Value) (Decision, error) { return s.decide(ctx, Tools, q, v) }))
}

// RefuseTool is Refusal(ctx, Tools, in.Value()), building the input
// document only when the decision is evaluated (not memoised).
func (e *Engine) RefuseTool(ctx context.Context, in ToolInput) (Decision, error) {
	s := e.current(ctx)
	if s == nil {
		return e.notCompiled(ctx, Tools)
	}
	return s.stamp(s.refusal(ctx, Tools, s.queries[Tools], in))
}

// notCompiled is the deny of a decision asked for without a snapshot (see
// Start).
func (e *Engine) notCompiled(ctx context.Context, point Point) (Decision, error) {
	return denied("policy not compiled"), fmt.Errorf("%w: %s: %w", ErrEval, point, e.notReady(ctx))
}

// decide evaluates point's allow rule for input, and its decision object
// when it does not allow.
func (s *snapshot) decide(ctx context.Context, point Point, q *queries, input ast.Value) (Decision, error) {
	ok, err := s.allow(ctx, q.allow, input)
	if err != nil {
		return denied("policy evaluation failed"), fmt.Errorf("%w: %s: %w", ErrEval, point, err)
	}
	if ok {
		return Decision{Allow: true}, nil
	}
	v, n, err := s.eval(ctx, q.decision, decisionVar, input, true)
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
	q, ok := s.queries[point]
	if !ok {
		return denied("unknown decision point"), fmt.Errorf("%w: %q", ErrUnknownPoint, point)
	}
	return s.stamp(s.refusal(ctx, point, q, valueInput{input}))
}

// stamp names s's policy in d.
func (s *snapshot) stamp(d Decision, err error) (Decision, error) {
	d.Revision = s.revision
	return d, err
}

func (s *snapshot) refusal(ctx context.Context, point Point, q *queries, in decisionInput) (Decision, error) {
	return s.memoised(ctx, point, in, true, func(input ast.Value) (Decision, error) {
		v, n, err := s.eval(ctx, q.decision, decisionVar, input, true)
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
func (s *snapshot) allow(ctx context.Context, body ast.Body, input ast.Value) (bool, error) {
	v, n, err := s.eval(ctx, body, allowVar, input, true)
	if err != nil {
		return false, err
	}
	return n == 1 && v != nil && v.Compare(ast.Boolean(true)) == 0, nil
}

// eval evaluates a compiled body `v = ref` with topdown directly and
// returns the value bound to v in the last result and the number of
// results. The deadline cancels the evaluation without a timer or a
// goroutine per call. strict makes a failing built-in an error (as
// decisions want) instead of leaving its expression undefined.
func (s *snapshot) eval(ctx context.Context, body ast.Body, v ast.Var, input ast.Value, strict bool) (ast.Value, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	c := deadlines.Get().(*deadline)
	c.at = time.Now().Add(s.timeout)
	defer c.release()
	q := topdown.NewQuery(body).
		WithCompiler(s.compiler).
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
