package server

import (
	"context"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// A policy reload swaps the engine's snapshot (engine.Engine.Adopt). The
// server's part: every call pins the snapshot in force when it starts,
// so the call finishes under it; and a session whose tools/list answer
// the new policy changes is sent notifications/tools/list_changed.

// pinner is a Decider whose snapshot a call can pin; *engine.Engine is
// one.
type pinner interface {
	Pin(ctx context.Context) context.Context
	GenerationFor(ctx context.Context) uint64
	RevisionFor(ctx context.Context) *string
}

// pin returns ctx carrying the policy snapshot in force, when the
// decider has snapshots.
func (p *pipeline) pin(ctx context.Context) context.Context {
	if d, ok := p.decide.(pinner); ok {
		return d.Pin(ctx)
	}
	return ctx
}

// revisionFor names the policy decisions under ctx come from (its
// bundle revision), or is nil.
func (p *pipeline) revisionFor(ctx context.Context) *string {
	if d, ok := p.decide.(pinner); ok {
		return d.RevisionFor(ctx)
	}
	return nil
}

// generationFor is the snapshot decisions under ctx come from; 0 means
// the decider does not tell, and nothing is memoised.
func (p *pipeline) generationFor(ctx context.Context) uint64 {
	if d, ok := p.decide.(pinner); ok {
		return d.GenerationFor(ctx)
	}
	return p.generation()
}

// DryRunner decides under the dry-run policy, when one is configured: a
// policy whose would-be decisions are recorded (audit.Record.DryRun) next
// to the enforced ones and never change an answer. ok is false when no
// dry-run policy is configured.
type DryRunner interface {
	DryRun(ctx context.Context, point engine.Point, input ast.Value) (d engine.Decision, ok bool, err error)
}

// dryRun is the dry-run decision on input, computed after the enforced
// one, for its record; nil when there is no dry-run policy.
func (p *pipeline) dryRun(ctx context.Context, input ast.Value) *audit.DryRun {
	if p.dry == nil || input == nil {
		return nil
	}
	d, ok, err := p.dry.DryRun(ctx, engine.Tools, input)
	if !ok {
		return nil
	}
	if err != nil {
		p.log.Warn("dry-run policy could not decide (not enforced)", "err", err)
		return &audit.DryRun{Reasons: d.Reasons, Error: "dry-run policy evaluation failed"}
	}
	return &audit.DryRun{Allow: d.Allow, Reasons: d.Reasons}
}

// listed remembers, per session, the tools its last tools/list answer
// offered, and to whom (the stateless protocol names its client in each
// request).
func (s *sessions) listed(ss *mcp.ServerSession, id identity, tools []string) {
	if ss == nil {
		return
	}
	st := s.state(ss)
	s.mu.Lock()
	st.listed, st.listedTo, st.hasListed = tools, id, true
	s.mu.Unlock()
}

// PolicyChanged tells the sessions that the policy was reloaded: each
// session whose tools/list answer would now differ from the last one it
// got is sent notifications/tools/list_changed (sessions of the
// stateless protocol, only when subscribed to it). It reports whether a
// notification was sent.
func (s *Server) PolicyChanged(ctx context.Context) bool {
	return s.OfferChanged(ctx, "policy reload")
}

// OfferChanged is PolicyChanged for another change that may change what
// tools/list offers a session, which why names (the tool pins, say).
func (s *Server) OfferChanged(ctx context.Context, why string) bool {
	changed := false
	for ss := range s.mcp.Sessions() {
		st := s.pipe.sessions.state(ss)
		s.pipe.sessions.mu.Lock()
		id, was, hasListed := st.listedTo, st.listed, st.hasListed
		s.pipe.sessions.mu.Unlock()
		if !hasListed {
			continue // it never asked: nothing it knows is stale
		}
		if now := s.visible(ctx, id); !slices.Equal(now, was) {
			s.log.Info("the tools offered to a session changed; notifying it", "why", why,
				"session", id.session, "before", len(was), "now", len(now))
			changed = true
		}
	}
	if changed {
		s.notifyToolsChanged()
	}
	return changed
}

// visible are the names of the tools tools/list offers to id, sorted.
func (s *Server) visible(ctx context.Context, id identity) []string {
	var out []string
	for name := range s.pipe.tools.all() {
		if ok, _ := s.pipe.permitted(ctx, id, name); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// notifyToolsChanged has the SDK send notifications/tools/list_changed
// to its sessions. The SDK sends it when a tool is added: one of ours is
// added again, unchanged, which changes nothing else.
func (s *Server) notifyToolsChanged() {
	s.dyn.Lock()
	defer s.dyn.Unlock()
	if s.anyTool == nil {
		return
	}
	s.mcp.AddTool(s.anyTool, s.pipe.call)
}
