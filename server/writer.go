package server

import (
	"io"
	"sync"
)

// lineWriter writes lines to out, coalescing those that arrive while a
// write is under way: the first writer writes at once (no answer waits
// for more to come), and the lines queued meanwhile go out together in
// the next write, made by one of their writers. Every call returns once
// its line is written, with that write's error; lines are never
// interleaved or reordered within a batch.
type lineWriter struct {
	out io.Writer

	mu      sync.Mutex
	cond    sync.Cond
	writing bool   // a batch is being written
	next    *batch // the lines queued for the next write
	spare   []byte // a written batch's buffer, for reuse
}

// batch is the lines of one write and how it went.
type batch struct {
	buf  []byte
	done bool
	err  error
}

// maxSpare caps the buffer kept for reuse.
const maxSpare = 256 << 10

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
	defer w.mu.Unlock()
	if w.next == nil {
		w.next = &batch{buf: w.spare[:0]}
		w.spare = nil
	}
	b := w.next
	b.buf = fill(b.buf)
	for w.writing && !b.done {
		w.cond.Wait()
	}
	if b.done {
		return b.err
	}
	// This call writes the batch its line is in.
	w.writing, w.next = true, nil
	w.mu.Unlock()
	_, err := w.out.Write(b.buf)
	w.mu.Lock()
	b.done, b.err = true, err
	if cap(b.buf) <= maxSpare {
		w.spare = b.buf[:0]
	}
	b.buf = nil
	w.writing = false
	w.cond.Broadcast()
	return err
}
