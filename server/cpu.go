package server

import (
	"context"
	"sync/atomic"
)

// cpuWorkers runs calls that only take CPU on a few goroutines of the
// connection: two per processor. Such a call still waits once, for its
// audit batch to be written (its records go out before its answer), so
// one per processor would leave a processor idle while it waits; two
// keep it busy, and their records share the next batch. More would not
// run sooner, only interleave. The workers are started as work comes and
// stay until the connection ends; the calls queue in a channel, so a
// worker that finishes one takes the next without sleeping while calls
// wait.
type cpuWorkers struct {
	ctx     context.Context
	jobs    chan func()
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
	w.ctx, w.jobs, w.max = ctx, make(chan func(), cpuQueue), int32(max(procs, 1))
}

// Go queues f for a worker, starting one if fewer than the bound run,
// and reports whether it did; it reports false, at once,
// when the queue is full.
func (w *cpuWorkers) Go(f func()) bool {
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

func (w *cpuWorkers) loop() {
	for {
		select {
		case f := <-w.jobs:
			f()
		case <-w.ctx.Done():
			// The connection is over; calls still queued are run, so
			// each is answered (or its write fails) as on any path.
			for {
				select {
				case f := <-w.jobs:
					f()
				default:
					w.running.Add(-1)
					return
				}
			}
		}
	}
}
