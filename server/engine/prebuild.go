package engine

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A prebuild parses and compiles the built-in modules before the
// configuration is known: at start-up, while the process still
// initialises and reads its policy. Neither depends on the policy's
// data, so the first build of a configuration with the same built-in
// modules and capabilities takes the prebuild's compile when it has no
// user modules, and its parsed built-in modules when it has some. The
// compile goes part by part (parts.go), the parts the first answers need
// first, and a build waits only for the parts it needs. It is taken
// once; any other configuration, or a later build, does all the work
// itself.
var prebuilt struct {
	mu sync.Mutex
	p  *prebuild
}

type prebuild struct {
	modules map[string]string
	caps    *ast.Capabilities
	// parsed holds the built-in modules parsed (nil if one failed) once
	// parsedDone is closed; c their parts (nil if the planning failed),
	// compiling one after the other, once planned is.
	parsed     map[string]*ast.Module
	parsedDone chan struct{}
	c          *compiled
	planned    chan struct{}
	// parseOnly is set when a build took the parsed modules only: the
	// parts left are not compiled.
	parseOnly atomic.Bool
}

// Prebuild starts parsing and compiling the built-in modules (those of
// Builtin) in the background, for the first build to take.
func Prebuild() {
	cfg, err := Builtin(nil, nil)
	if err != nil {
		return // the build reports it
	}
	p := &prebuild{modules: cfg.Modules, caps: cfg.Capabilities, parsedDone: make(chan struct{}), planned: make(chan struct{})}
	prebuilt.mu.Lock()
	prebuilt.p = p
	prebuilt.mu.Unlock()
	go func() {
		parsed := map[string]*ast.Module{}
		// One goroutine: the process's own start, on the other
		// processor, is not held back.
		for _, m := range parseModulesOn(1, cfg.Capabilities, cfg.Modules) {
			if m.err != nil {
				parsed = nil // the build parses again, and reports it
				break
			}
			parsed[m.name] = m.m
		}
		// A build with user modules gets copies of its own: OPA's modules
		// are not safe to read from two goroutines (terms sort their keys
		// on first use), and the compile below reads these.
		if parsed != nil {
			own := make(map[string]*ast.Module, len(parsed))
			for name, m := range parsed {
				own[name] = m.Copy()
			}
			p.parsed = own
		}
		close(p.parsedDone)
		if parsed != nil {
			p.c, _ = prepareModules(cfg, parsed) // an error: the build prepares again, and reports it
		}
		close(p.planned)
		if p.c == nil {
			return
		}
		for _, part := range p.c.parts {
			if p.parseOnly.Load() {
				part.err = errNotPrebuilt
				close(part.done)
				continue
			}
			compilePart(part, cfg.Capabilities)
		}
	}()
}

// errNotPrebuilt fails the parts a prebuild left out; no build waits
// for them.
var errNotPrebuilt = errors.New("left out of the prebuild")

// takePrebuilt returns what the prebuild made for cfg, waiting for it:
// its parts (compiling, tools and masks first) when cfg has no user
// modules, else its parsed built-in modules. Both are nil when no
// prebuild was started, it is another configuration's, it was taken, it
// failed, or ctx ended first.
func takePrebuilt(ctx context.Context, cfg Config) (*compiled, map[string]*ast.Module) {
	prebuilt.mu.Lock()
	p := prebuilt.p
	if p == nil || cfg.Capabilities != p.caps || !maps.Equal(cfg.Modules, p.modules) {
		prebuilt.mu.Unlock()
		return nil, nil
	}
	prebuilt.p = nil
	prebuilt.mu.Unlock()
	user := len(cfg.UserModules) != 0
	if user {
		p.parseOnly.Store(true)
	}
	wait := p.planned
	if user {
		wait = p.parsedDone
	}
	if ctx.Err() != nil {
		p.parseOnly.Store(true) // nobody takes its parts
		return nil, nil
	}
	select {
	case <-wait:
	case <-ctx.Done():
		p.parseOnly.Store(true)
		return nil, nil
	}
	if user {
		return nil, p.parsed
	}
	return p.c, nil
}
