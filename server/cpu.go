package server

import (
	"context"
	"sync/atomic"
)

// cpuWorkers runs calls that only take CPU on at most one goroutine per
// processor: more would not run sooner, only interleave (and each
// hand-off to a goroutine that sleeps costs a wake-up). The workers of a
// connection are started as work comes and stay until it ends; the calls
// queue in a channel, so a worker that finishes one takes the next
// without sleeping while calls wait.
type cpuWorkers struct {
	ctx     context.Context
	jobs    chan func()
	max     int32
	running atomic.Int32
}

// cpuQueue bounds the calls waiting for a CPU worker; past it a call
// runs on a goroutine of its own (the in-flight cap bounds those).
const cpuQueue = 256

func (w *cpuWorkers) init(ctx context.Context, procs int) {
	w.ctx, w.jobs, w.max = ctx, make(chan func(), cpuQueue), int32(max(procs, 1))
}

// Go queues f for a worker, starting one if fewer than one per
// processor run. It never blocks.
func (w *cpuWorkers) Go(f func()) {
	select {
	case w.jobs <- f:
	default:
		handlers.Go(f)
		return
	}
	for {
		n := w.running.Load()
		if n >= w.max {
			return
		}
		if w.running.CompareAndSwap(n, n+1) {
			go w.loop()
			return
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
