package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The SDK handles every request on a goroutine of its own, started for
// it. A policy decision is deep recursion (OPA's evaluator), so each of
// those goroutines grew its stack from 8 KiB, copying it each time, on
// every request. Handlers run instead on workers that are reused, whose
// stacks have already grown; the SDK's goroutine only waits for the
// answer.
//
// A worker is started whenever none is idle, so the pool never queues
// work: as many requests run at once as before (the transport's in-flight
// cap bounds them), and a slow tool call never holds up another. Up to
// maxIdle workers wait for more once their request is done, and leave
// after idleFor.

// workerPool runs tasks on reused goroutines.
type workerPool struct {
	work    chan func()
	idle    atomic.Int32
	maxIdle int32
	idleFor time.Duration
}

// handlers is the pool the request handlers run on, shared by every
// server of the process.
var handlers = newWorkerPool(int32(2*runtime.GOMAXPROCS(0)+4), time.Minute)

func newWorkerPool(maxIdle int32, idleFor time.Duration) *workerPool {
	return &workerPool{work: make(chan func()), maxIdle: maxIdle, idleFor: idleFor}
}

// Go runs f on an idle worker, or on a new one if none is idle.
func (w *workerPool) Go(f func()) {
	select {
	case w.work <- f:
	default:
		go w.loop(f)
	}
}

func (w *workerPool) loop(f func()) {
	var t *time.Timer
	for {
		f()
		if w.idle.Add(1) > w.maxIdle {
			w.idle.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(w.idleFor)
		} else {
			t.Reset(w.idleFor)
		}
		select {
		case f = <-w.work:
			w.idle.Add(-1)
			t.Stop()
		case <-t.C:
			w.idle.Add(-1)
			return
		}
	}
}

// onWorkers is a receiving middleware that runs the rest of the chain on
// a pooled worker and waits for it, for the methods that evaluate policy;
// the others (ping, initialize, notifications) are cheaper run where they
// are than handed over.
func onWorkers(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "tools/call" && method != "tools/list" {
			return next(ctx, method, req)
		}
		type answer struct {
			res mcp.Result
			err error
		}
		done := make(chan answer, 1)
		handlers.Go(func() {
			res, err := next(ctx, method, req)
			done <- answer{res, err}
		})
		a := <-done
		return a.res, a.err
	}
}
