package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
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
}

// Decision is the answer of one decision point.
type Decision struct {
	Allow   bool
	Reasons []string
}

// Engine answers policy decisions from the current snapshot.
type Engine struct {
	snap atomic.Pointer[snapshot]
}

// generations numbers snapshots across all engines.
var generations atomic.Uint64

type snapshot struct {
	gen     uint64
	timeout time.Duration
	queries map[Point]*queries
	opts    []rego.EvalOption // shared by every evaluation of the snapshot
	// mask is the compiled body binding data.mcp.audit.mask, the audit
	// mask rules (see Mask).
	mask ast.Body
	// builtinMasks: the built-in mask rules are the only ones (see
	// maskMayMatch).
	builtinMasks bool

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
	allow    ast.Body
	decision rego.PreparedEvalQuery
}

// allowVar binds the value of the allow rule in the hot-path query.
var allowVar = ast.Var("mcp_allow")

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
	parsed := make(map[string]*ast.Module, len(cfg.Modules)+len(cfg.UserModules))
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	if cfg.Capabilities != nil {
		opts.Capabilities = cfg.Capabilities
	}
	builtin, user := map[string]*ast.Module{}, map[string]*ast.Module{}
	for _, set := range []struct {
		src  map[string]string
		into map[string]*ast.Module
	}{{cfg.Modules, builtin}, {cfg.UserModules, user}} {
		for _, name := range slices.Sorted(maps.Keys(set.src)) {
			if _, dup := parsed[name]; dup {
				return nil, fmt.Errorf("%w: %s: module given twice", ErrCompile, name)
			}
			m, err := ast.ParseModuleWithOpts(name, set.src[name], opts)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrCompile, err)
			}
			if err := checkPackage(name, m); err != nil {
				return nil, err
			}
			parsed[name], set.into[name] = m, m
		}
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
	data := map[string]any{"mcp": map[string]any{"policy": cfg.Data}}
	store := inmem.NewFromObjectWithOpts(data,
		inmem.OptRoundTripOnWrite(true),
		inmem.OptReturnASTValuesOnRead(true))

	policyValue, err := ast.InterfaceToValue(cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: policy data: %w", ErrCompile, err)
	}
	s := &snapshot{gen: generations.Add(1), timeout: cfg.Timeout, queries: map[Point]*queries{},
		compiler: comp, store: store, cache: &policyCache{root: policyValue}}
	if s.txn, err = store.NewTransaction(ctx); err != nil {
		return nil, fmt.Errorf("%w: open store: %w", ErrCompile, err)
	}
	s.opts = []rego.EvalOption{
		rego.EvalTransaction(s.txn),
		rego.EvalBaseCache(s.cache),
		rego.EvalMetrics(metrics.NoOp()),
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	for _, p := range Points {
		q := &queries{}
		var err error
		body := ast.NewBody(ast.Equality.Expr(ast.NewTerm(allowVar), ast.MustParseTerm("data.mcp."+string(p)+".allow")))
		if q.allow, err = comp.QueryCompiler().Compile(body); err != nil {
			return nil, fmt.Errorf("%w: compile data.mcp.%s.allow: %w", ErrCompile, p, err)
		}
		if q.decision, err = prepare(ctx, comp, store, "data.mcp."+string(p)+".decision"); err != nil {
			return nil, err
		}
		s.queries[p] = q
	}
	if s.mask, err = compileMask(comp); err != nil {
		return nil, err
	}
	s.builtinMasks = onlyBuiltinMasks(cfg, parsed)
	return s, nil
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

func prepare(ctx context.Context, comp *ast.Compiler, store storage.Store, query string) (rego.PreparedEvalQuery, error) {
	pq, err := rego.New(
		rego.Query(query),
		rego.Compiler(comp),
		rego.Store(store),
		rego.StoreReadAST(true),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return pq, fmt.Errorf("%w: prepare %s: %w", ErrCompile, query, err)
	}
	return pq, nil
}

// Generation identifies the snapshot in force; it changes on every
// successful Reload. Callers memoising decisions key them on it.
func (e *Engine) Generation() uint64 { return e.snap.Load().gen }

// Decide evaluates point for input under the decision deadline. Any
// failure is a deny carrying an error that wraps [ErrEval].
func (e *Engine) Decide(ctx context.Context, point Point, input ast.Value) (Decision, error) {
	s := e.snap.Load()
	q, ok := s.queries[point]
	if !ok {
		return denied("unknown decision point"), fmt.Errorf("%w: %q", ErrUnknownPoint, point)
	}
	ok, err := s.allow(ctx, q.allow, input)
	if err != nil {
		return denied("policy evaluation failed"), fmt.Errorf("%w: %s: %w", ErrEval, point, err)
	}
	if ok {
		return Decision{Allow: true}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	opts := append(s.opts[:len(s.opts):len(s.opts)], rego.EvalParsedInput(input))
	rs, err := q.decision.Eval(ctx, opts...)
	if err != nil {
		return denied("policy evaluation failed"), fmt.Errorf("%w: %s: %w", ErrEval, point, err)
	}
	d, ok := decode(rs)
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

// allow evaluates a compiled allow body with topdown directly: the hot
// path of every decision. The deadline cancels the evaluation without a
// timer or a goroutine per call; only a boolean true allows.
func (s *snapshot) allow(ctx context.Context, body ast.Body, input ast.Value) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	c := deadlines.Get().(*deadline)
	c.at = time.Now().Add(s.timeout)
	defer c.release()
	q := topdown.NewQuery(body).
		WithCompiler(s.compiler).
		WithStore(s.store).
		WithTransaction(s.txn).
		WithInput(ast.NewTerm(input)).
		WithBaseCache(s.cache).
		WithMetrics(metrics.NoOp()).
		WithStrictBuiltinErrors(true).
		WithCancel(c)
	var r struct {
		allowed bool
		results int
	}
	err := q.Iter(ctx, func(qr topdown.QueryResult) error {
		r.results++
		if v, ok := qr[allowVar]; ok {
			r.allowed = v.Value.Compare(ast.Boolean(true)) == 0
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return r.allowed && r.results == 1, nil
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

func decode(rs rego.ResultSet) (Decision, bool) {
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, false
	}
	obj, ok := rs[0].Expressions[0].Value.(map[string]any)
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
