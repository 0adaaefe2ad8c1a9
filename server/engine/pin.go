package engine

import (
	"context"
	"fmt"
)

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
	s := e.current(ctx)
	if s == nil {
		return ctx // nothing to pin: every decision under ctx is a deny
	}
	return context.WithValue(ctx, pinKey{}, &pinned{e: e, s: s})
}

// current is the snapshot ctx pinned for this engine, else the one in
// force.
func (e *Engine) current(ctx context.Context) *snapshot {
	if p, ok := ctx.Value(pinKey{}).(*pinned); ok && p.e == e {
		return p.s
	}
	if s := e.snap.Load(); s != nil {
		return s
	}
	return e.await(ctx)
}

// await waits for the first snapshot of an engine from Start: nil if its
// build failed or ctx ended first.
func (e *Engine) await(ctx context.Context) *snapshot {
	if e.ready == nil {
		return nil
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
	}
	return e.snap.Load()
}

// notReady is the error of a use that found no snapshot.
func (e *Engine) notReady(ctx context.Context) error {
	if e.ready != nil {
		select {
		case <-e.ready: // e.err is set
			if e.err != nil {
				return fmt.Errorf("%w: %w", ErrNotReady, e.err)
			}
		default:
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return ErrNotReady
}

// GenerationFor is the generation of the snapshot decisions under ctx
// come from: the pinned one, else the one in force. Memos keyed on a
// generation must use it, so a decision of a pinned older snapshot is
// never stored under the new one.
func (e *Engine) GenerationFor(ctx context.Context) uint64 {
	if s := e.current(ctx); s != nil {
		return s.gen
	}
	return 0
}

// RevisionFor is the Config.Revision of the snapshot decisions under ctx
// come from, as GenerationFor.
func (e *Engine) RevisionFor(ctx context.Context) *string {
	if s := e.current(ctx); s != nil {
		return s.revision
	}
	return nil
}

// Adopt swaps in the snapshot in force in other, an engine built (and
// checked) from a new configuration: a reload whose compilation already
// happened. Calls that pinned the old snapshot finish under it.
// An engine from [Start] is adopted once its build is done; if the build
// failed, nothing changes.
func (e *Engine) Adopt(other *Engine) {
	if other.Wait(context.Background()) != nil {
		return
	}
	if s := other.current(context.Background()); s != nil {
		e.snap.Store(s)
	}
}
