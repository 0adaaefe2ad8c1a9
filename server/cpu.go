package server

import (
	"context"
	"sync/atomic"
)

// cpuWorkers runs calls that only take CPU on a few goroutines of the
// connection: two per processor. Such a call still waits once, for its
// audit batch to be written (its records go out before its answer), so
// one per processor would leave a processor idle while it waits; two
// keep it busy. More would not run sooner, only interleave. The workers
// are started as work comes and stay until the connection ends; the
// calls queue in a channel, so a worker that finishes one takes the next
// without sleeping while calls wait.
//
// A worker runs the calls it finds waiting back to back, up to
// maxGroup, as one group (callGroup): their audit records are kept
// (audit.Stage) and written in one batch once the last has run, and then
// their answers in one write. So with many calls in flight, a batch of
// calls costs one file check, one audit write and one answer write, not
// one of each per call.
type cpuWorkers struct {
	ctx     context.Context
	jobs    chan func(*callGroup)
	max     int32
	running atomic.Int32
}

// cpuQueue bounds the calls waiting for a CPU worker. Past it the reader
// runs the next call itself: it reads no more until that is done, so a
// client that writes faster than the calls run is held back by its pipe,
// as when every call ran on the reader, rather than pushed past the
// in-flight cap and refused.
const cpuQueue = 64

func (w *cpuWorkers) init(ctx context.Context, procs int) {
	w.ctx, w.jobs, w.max = ctx, make(chan func(*callGroup), cpuQueue), int32(max(procs, 1))
}

// Go queues f for a worker, starting one if fewer than the bound run,
// and reports whether it did; it reports false, at once,
// when the queue is full.
func (w *cpuWorkers) Go(f func(*callGroup)) bool {
	select {
	case w.jobs <- f:
	default:
		return false
	}
	for {
		n := w.running.Load()
		if n >= w.max {
			return true
		}
		if w.running.CompareAndSwap(n, n+1) {
			go w.loop()
			return true
		}
	}
}

// maxGroup bounds the calls of one group: the first call's answer waits
// for the others to run.
const maxGroup = 16

func (w *cpuWorkers) loop() {
	g := &callGroup{}
	for {
		select {
		case f := <-w.jobs:
			w.group(g, f)
		case <-w.ctx.Done():
			// The connection is over; calls still queued are run, so
			// each is answered (or its write fails) as on any path.
			for {
				select {
				case f := <-w.jobs:
					w.group(g, f)
				default:
					w.running.Add(-1)
					return
				}
			}
		}
	}
}

// group runs f and the calls queued behind it, up to maxGroup, as g,
// and then finishes g: their records written, then their answers.
func (w *cpuWorkers) group(g *callGroup, f func(*callGroup)) {
	f(g)
	for n := 1; n < maxGroup; n++ {
		select {
		case f = <-w.jobs:
			f(g)
			continue
		default:
		}
		break
	}
	g.finish(w.ctx)
}
