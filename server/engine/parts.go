package engine

import (
	"context"
	"fmt"
	"maps"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A configuration's modules compile in parts. The built-in modules of
// one decision package (mcp.tools, mcp.network, mcp.filesystem,
// mcp.commands, mcp.audit) read nothing of the others: each package
// compiles on its own, and the part a decision needs is all it waits
// for. A server's first answers need the tools decision and the audit
// masks of their records; those parts come first, and the network,
// filesystem and commands parts compile while the server answers (a
// decision at one of those points waits for its part). A build that is
// not the first ([New], [Engine.Reload]) compiles the parts side by
// side and returns once all are done.
//
// Any module that reads another package's rules (or data beyond the
// policy document), a module outside those packages, and every
// configuration with user modules compile as one part, as a whole.

// A part is the compile of some of a configuration's modules and the
// queries of the decision points (and the audit masks) they answer.
type part struct {
	name   string
	points []Point // the decision points it answers
	mask   bool    // it answers the audit masks
	mods   map[string]*ast.Module

	// done is closed once the part is compiled or failed (err); the
	// fields below are set by then.
	done         chan struct{}
	err          error
	comp         *ast.Compiler
	queries      map[Point]*queries
	maskQuery    ast.Body
	memos        map[Point]*decisionMemo
	stable       map[Point]bool
	readsSession bool // when it answers Tools
}

// compiled is what a build makes of a configuration's modules, whatever
// its data: the parts, and whether the built-in mask rules are the only
// ones.
type compiled struct {
	parts        []*part // in the order they compile: tools and the masks first
	byPoint      map[Point]*part
	mask         *part
	builtinMasks bool
}

// wait returns once p is compiled, with its error, or ctx's when ctx ends
// first.
func (p *part) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// ready reports whether p is compiled without error, without waiting.
func (p *part) ready() bool {
	select {
	case <-p.done:
		return p.err == nil
	default:
		return false
	}
}

// first lists the parts a server's first answers need: the tools
// decision's and the masks'.
func (c *compiled) first() []*part {
	out := []*part{c.byPoint[Tools]}
	if c.mask != c.byPoint[Tools] {
		out = append(out, c.mask)
	}
	return out
}

// waitFor waits for parts in order and returns the first error.
func waitFor(ctx context.Context, parts []*part) error {
	for _, p := range parts {
		if err := p.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// compileParts compiles c's parts on up to workers goroutines, in order:
// a part starts once those before it have started.
func (c *compiled) compileParts(caps *ast.Capabilities, workers int) {
	inParallel(len(c.parts), workers, func(i int) { compilePart(c.parts[i], caps) })
}

// compilePart is how a part is compiled; tests hold parts back.
var compilePart = (*part).compile

// compile compiles p's modules and prepares its queries, then closes
// p.done.
func (p *part) compile(caps *ast.Capabilities) {
	defer close(p.done)
	comp := ast.NewCompiler().
		WithCapabilities(caps).
		WithEnablePrintStatements(false)
	if comp.Compile(p.mods); comp.Failed() {
		p.err = fmt.Errorf("%w: %w", ErrCompile, comp.Errors)
		return
	}
	if p.name != wholePart {
		// The plan read the parsed modules; the compiled ones (imports
		// resolved, rule heads rewritten) must keep to the package too,
		// or a rule they read would be missing from this part.
		for name, m := range comp.Modules {
			if !keepsTo(m, p.name) {
				p.err = fmt.Errorf("%w: %s: compiled, it reads beyond package mcp.%s, which compiles on its own", ErrCompile, name, p.name)
				return
			}
		}
	}
	qs := make(map[Point]*queries, len(p.points))
	for _, pt := range p.points {
		q := &queries{}
		var err error
		if q.allow, err = compileBinding(comp, allowVar, "data.mcp."+string(pt)+".allow"); err != nil {
			p.err = err
			return
		}
		if q.decision, err = compileBinding(comp, decisionVar, "data.mcp."+string(pt)+".decision"); err != nil {
			p.err = err
			return
		}
		qs[pt] = q
	}
	if p.mask {
		var err error
		if p.maskQuery, err = compileMask(comp); err != nil {
			p.err = err
			return
		}
	}
	p.memos, p.stable = map[Point]*decisionMemo{}, map[Point]bool{}
	for _, pt := range p.points {
		m, stable := newMemo(comp, ast.MustParseRef("data.mcp."+string(pt)))
		if m != nil {
			p.memos[pt] = m
		}
		p.stable[pt] = stable
		if pt == Tools {
			p.readsSession = readsSession(comp)
		}
	}
	p.comp, p.queries = comp, qs
}

// partNames are the packages the built-in modules compile by, in the
// order they compile: the tools decision's and the masks' first, then
// every other decision point's.
var partNames = func() []string {
	names := []string{string(Tools), "audit"}
	for _, p := range Points {
		if p != Tools {
			names = append(names, string(p))
		}
	}
	return names
}()

// planParts divides a configuration's parsed modules into parts (none
// compiled yet): a part per package when there are no user modules and
// every module keeps to its package (ownPackage), else one part.
func planParts(builtin, user map[string]*ast.Module) *compiled {
	byName := map[string]*part{}
	split := len(user) == 0
	if split {
		for _, name := range partNames {
			byName[name] = &part{name: name, mods: map[string]*ast.Module{}}
		}
		for file, m := range builtin {
			pkg, ok := ownPackage(m)
			if !ok || byName[pkg] == nil {
				split = false
				break
			}
			byName[pkg].mods[file] = m
		}
	}
	if !split {
		return oneWhole(builtin, user)
	}
	c := &compiled{byPoint: map[Point]*part{}}
	for _, name := range partNames {
		p := byName[name]
		p.done = make(chan struct{})
		if name == "audit" {
			p.mask, c.mask = true, p
		} else {
			p.points = []Point{Point(name)}
			c.byPoint[Point(name)] = p
		}
		c.parts = append(c.parts, p)
	}
	return c
}

// wholePart names the part of a configuration compiled as one.
const wholePart = "all"

// oneWhole is modules compiled as one part, which answers everything.
func oneWhole(modules ...map[string]*ast.Module) *compiled {
	whole := &part{name: wholePart, points: Points, mask: true, mods: map[string]*ast.Module{}, done: make(chan struct{})}
	for _, m := range modules {
		maps.Copy(whole.mods, m)
	}
	c := &compiled{parts: []*part{whole}, byPoint: map[Point]*part{}, mask: whole}
	for _, pt := range Points {
		c.byPoint[pt] = whole
	}
	return c
}

// ownPackage is the decision package (the member of data.mcp) m belongs
// to, and whether m keeps to it: every reference of m to data is to that
// package or to the policy document (data.mcp.policy), through constant
// keys.
func ownPackage(m *ast.Module) (string, bool) {
	path := m.Package.Path
	if len(path) < 3 || !path[1].Equal(ast.InternedTerm("mcp")) {
		return "", false
	}
	pkg, ok := path[2].Value.(ast.String)
	if !ok || pkg == "policy" {
		return "", false
	}
	return string(pkg), keepsTo(m, string(pkg))
}

// keepsTo reports whether every reference of m to data is to package
// data.mcp.<pkg> (or below it) or to the policy document, through
// constant keys.
func keepsTo(m *ast.Module, pkg string) bool {
	keeps := true
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		if !keeps {
			return true
		}
		switch x := x.(type) {
		case *ast.Rule:
			// A rule head's reference (p[data.x].q := 1) is no term the
			// visitor walks of itself.
			if x.Head != nil {
				vis.Walk(x.Head.Reference)
			}
		case ast.Var:
			if x.Equal(ast.DefaultRootDocument.Value) {
				keeps = false // data as a whole, or chosen by a variable
			}
		case ast.Ref:
			if len(x) == 0 || !x[0].Equal(ast.DefaultRootDocument) {
				return false
			}
			if len(x) < 3 || !x[1].Equal(ast.InternedTerm("mcp")) {
				keeps = false
				return true
			}
			if key, ok := x[2].Value.(ast.String); !ok || (string(key) != pkg && key != "policy") {
				keeps = false
				return true
			}
			for _, t := range x[1:] {
				vis.Walk(t)
			}
			return true
		}
		return false
	})
	for _, imp := range m.Imports {
		vis.Walk(imp.Path)
	}
	for _, r := range m.Rules {
		vis.Walk(r)
	}
	return keeps
}
