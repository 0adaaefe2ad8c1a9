package engine

import (
	"context"
	"maps"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A prebuild parses and compiles the built-in modules before the
// configuration is known: at start-up, while the process still
// initialises and reads its policy. Neither depends on the policy's
// data, so the first build of a configuration with the same built-in
// modules and capabilities takes the prebuild's compile when it has no
// user modules, and its parsed built-in modules when it has some. It is
// taken once; any other configuration, or a later build, does all the
// work itself.
var prebuilt struct {
	mu sync.Mutex
	p  *prebuild
}

type prebuild struct {
	modules map[string]string
	caps    *ast.Capabilities
	// parsed holds the built-in modules parsed (nil if one failed) once
	// parsedDone is closed; c the compile (nil if it failed) once done is.
	parsed     map[string]*ast.Module
	parsedDone chan struct{}
	c          *compiled
	done       chan struct{}
}

// Prebuild starts parsing and compiling the built-in modules (those of
// Builtin) in the background, for the first build to take.
func Prebuild() {
	cfg, err := Builtin(nil, nil)
	if err != nil {
		return // the build reports it
	}
	p := &prebuild{modules: cfg.Modules, caps: cfg.Capabilities, parsedDone: make(chan struct{}), done: make(chan struct{})}
	prebuilt.mu.Lock()
	prebuilt.p = p
	prebuilt.mu.Unlock()
	go func() {
		defer close(p.done)
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
			p.c, _ = compileModules(cfg, parsed) // an error: the build compiles again, and reports it
		}
	}()
}

// takePrebuilt returns what the prebuild made for cfg, waiting for it:
// its compile when cfg has no user modules, else its parsed built-in
// modules. Both are nil when no prebuild was started, it is another
// configuration's, it was taken, it failed, or ctx ended first.
func takePrebuilt(ctx context.Context, cfg Config) (*compiled, map[string]*ast.Module) {
	prebuilt.mu.Lock()
	p := prebuilt.p
	if p == nil || cfg.Capabilities != p.caps || !maps.Equal(cfg.Modules, p.modules) {
		prebuilt.mu.Unlock()
		return nil, nil
	}
	prebuilt.p = nil
	prebuilt.mu.Unlock()
	wait := p.done
	if len(cfg.UserModules) != 0 {
		wait = p.parsedDone
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, nil
	}
	if len(cfg.UserModules) != 0 {
		return nil, p.parsed
	}
	return p.c, nil
}
