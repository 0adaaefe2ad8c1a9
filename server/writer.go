package server

import (
	"io"
	"sync"
)

// lineWriter writes lines to out, coalescing those that arrive while a
// write is under way. The first writer writes at once (no answer waits
// for more to come) and goes on writing what queued meanwhile, in one
// write per round, until nothing is left; so every line queued is
// written without another goroutine being woken to write it.
//
// A line added with write returns once it is written, with that write's
// error. A line added with post returns at once: the answer is owed
// until it is written, so written is told how many posted lines each
// batch held once out has taken it (or failed).
// Lines are never interleaved, and never reordered: they go out in the
// order they were added.
type lineWriter struct {
	out io.Writer
	// written, if set, is told how many posted lines each batch held
	// once the batch is written, with the write's error. It is called
	// without the writer's lock, by the goroutine that wrote the batch.
	written func(posted int, err error)
	// failed, if set, is told of the first write that fails: the output
	// is gone (a client that closed its end, a full disk), and no later
	// line will reach it either.
	failed     func(err error)
	failedOnce sync.Once

	mu      sync.Mutex
	cond    sync.Cond
	writing bool   // a batch is being written
	next    *batch // the lines queued for the next write
	spare   *batch // a written batch, for reuse
}

// batch is the lines of one write, how many were posted, and how it
// went.
type batch struct {
	buf     []byte
	posted  int
	waiters int // calls waiting for it
	done    bool
	err     error
}

// maxSpare caps the buffer kept for reuse.
const maxSpare = 256 << 10

// maxPosted is how many posted lines may wait for the write under way
// before post waits as write does: past it the output is behind, and
// the client is held back rather than its answers piling up (and its
// requests running into the in-flight cap).
const maxPosted = 64

func newLineWriter(out io.Writer) *lineWriter {
	w := &lineWriter{out: out}
	w.cond.L = &w.mu
	return w
}

// writeLine writes data and a newline.
func (w *lineWriter) writeLine(data []byte) error {
	return w.write(func(buf []byte) []byte { return append(append(buf, data...), '\n') })
}

// write queues the bytes fill appends (a whole line) and returns once
// they are written.
func (w *lineWriter) write(fill func([]byte) []byte) error {
	w.mu.Lock()
	b := w.queue(fill)
	if w.writing {
		return w.wait(b)
	}
	return w.lead(b)
}

// post queues the bytes fill appends (a whole line, an answer) and
// returns without waiting for them to be written, unless no write is
// under way: then this call writes them, and what queues meanwhile,
// before it returns. written counts the line once it is written. When
// more than maxPosted lines or maxSpare bytes already wait, it waits
// for them to be written.
func (w *lineWriter) post(fill func([]byte) []byte) { w.postN(1, fill) }

// postN is post for n lines that fill appends at once.
func (w *lineWriter) postN(n int, fill func([]byte) []byte) {
	w.mu.Lock()
	b := w.queue(fill)
	b.posted += n
	if w.writing {
		if b.posted > maxPosted || len(b.buf) > maxSpare {
			// The output is behind (a client slow to read): wait, so
			// that the calls, and the reader behind them, wait too.
			w.wait(b)
			return
		}
		w.mu.Unlock()
		return
	}
	w.lead(b)
}

// wait waits until b is written and returns its error. The caller holds
// w.mu; wait releases it.
func (w *lineWriter) wait(b *batch) error {
	b.waiters++
	for !b.done {
		w.cond.Wait()
	}
	err := b.err
	w.mu.Unlock()
	return err
}

// queue appends a line to the next batch and returns it. The caller
// holds w.mu.
func (w *lineWriter) queue(fill func([]byte) []byte) *batch {
	if w.next == nil {
		w.next, w.spare = w.spare, nil
		if w.next == nil {
			w.next = &batch{}
		}
	}
	b := w.next
	b.buf = fill(b.buf)
	return b
}

// lead writes the queued batches, the first of them mine, until none is
// left, and returns the error of mine. The caller holds w.mu; lead
// releases it.
func (w *lineWriter) lead(mine *batch) error {
	w.writing = true
	var err error
	for w.next != nil {
		b := w.next
		w.next = nil
		w.mu.Unlock()
		_, werr := w.out.Write(b.buf)
		if b == mine {
			err = werr
		}
		if werr != nil && w.failed != nil {
			w.failedOnce.Do(func() { w.failed(werr) })
		}
		if b.posted > 0 && w.written != nil {
			w.written(b.posted, werr)
		}
		w.mu.Lock()
		if b.waiters > 0 {
			// The waiters read done and err; the batch is theirs now.
			b.done, b.err = true, werr
			w.cond.Broadcast()
			continue
		}
		if cap(b.buf) <= maxSpare {
			b.buf, b.posted = b.buf[:0], 0
			w.spare = b
		}
	}
	w.writing = false
	w.mu.Unlock()
	return err
}

// roomFor reports whether posting a line of n bytes would return
// without waiting: while a write is under way, when the queue stays
// under post's limits; otherwise when out is a regular file, or an empty
// pipe with that much room (outputRoom). Elsewhere, or when out cannot
// tell, it reports false. The transport's reader posts a large answer
// itself only then: a client that stops reading its output must not stop
// the reader, which would then never see the end of the input.
func (w *lineWriter) roomFor(n int) bool {
	w.mu.Lock()
	writing, posted, queued := w.writing, 0, 0
	if w.next != nil {
		posted, queued = w.next.posted, len(w.next.buf)
	}
	w.mu.Unlock()
	if writing {
		return posted < maxPosted && queued+n <= maxSpare
	}
	room, ok := outputRoom(w.out)
	return ok && room >= queued+n
}
