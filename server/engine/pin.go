package engine

import "context"

// A call pins the snapshot in force when it starts: every decision taken
// on its behalf (the tool decision, each guarded access while its handler
// runs, the masks of its audit records) comes from that one snapshot,
// even when a reload swaps in a new one meanwhile.

type pinKey struct{}

type pinned struct {
	e *Engine
	s *snapshot
}

// Pin returns ctx carrying the snapshot in force now. Decisions of this
// engine under the returned context use it; other engines ignore it. A
// context that already carries a pin of this engine is returned as is.
func (e *Engine) Pin(ctx context.Context) context.Context {
	if p, ok := ctx.Value(pinKey{}).(*pinned); ok && p.e == e {
		return ctx
	}
	return context.WithValue(ctx, pinKey{}, &pinned{e: e, s: e.snap.Load()})
}

// current is the snapshot ctx pinned for this engine, else the one in
// force.
func (e *Engine) current(ctx context.Context) *snapshot {
	if p, ok := ctx.Value(pinKey{}).(*pinned); ok && p.e == e {
		return p.s
	}
	return e.snap.Load()
}

// GenerationFor is the generation of the snapshot decisions under ctx
// come from: the pinned one, else the one in force. Memos keyed on a
// generation must use it, so a decision of a pinned older snapshot is
// never stored under the new one.
func (e *Engine) GenerationFor(ctx context.Context) uint64 { return e.current(ctx).gen }

// Adopt swaps in the snapshot in force in other, an engine built (and
// checked) from a new configuration: a reload whose compilation already
// happened. Calls that pinned the old snapshot finish under it.
func (e *Engine) Adopt(other *Engine) { e.snap.Store(other.snap.Load()) }
