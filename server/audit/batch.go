package audit

import (
	"context"
	"fmt"
	"sync"
)

// Group commit. A record on a file sink costs a lock of the file, stats
// to follow other writers and rotations, a write and (with fsync
// durability) a sync. Records that arrive while another is being written
// wait for it and then go out together: one lock, one write, one sync for
// the batch, each chained to the one before it as usual. The first record
// never waits for more; a record's Log returns only once its batch is
// written (and synced), so no call goes on before its record is durable.
// The file lock still covers one whole batch, so several servers on one
// log keep one chain.

// batchSink is a sink that writes several lines at once: all of them, in
// order, or an error.
type batchSink interface {
	// writeLines writes data, whole lines each ending in a newline, with
	// one write (and one sync).
	writeLines(ctx context.Context, data []byte) error
}

// lines are the buffers batches are chained into.
var lines = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

var _ batchSink = (*FileSink)(nil)

// pending is a record waiting to be written.
type pending struct {
	body []byte
	err  error
	// done receives once the record is written (false) or when its
	// writer is to write the next batch (true).
	done chan bool
}

// committer queues records for the next batch.
type committer struct {
	mu      sync.Mutex
	queue   []*pending
	writing bool
}

// maxBatch caps the records of one batch.
const maxBatch = 256

// commit writes body, chained, in the next batch, and returns that
// batch's result for it.
func (l *Logger) commit(ctx context.Context, bs batchSink, r Record, body []byte) error {
	return l.commitAll(ctx, bs, []Record{r}, [][]byte{body})
}

// commitAll queues bodies, in order, for the next batch (all of them in
// it unless it is full) and returns once each is written, with the
// first error.
func (l *Logger) commitAll(ctx context.Context, bs batchSink, rs []Record, bodies [][]byte) error {
	ps := make([]*pending, len(bodies))
	for i, b := range bodies {
		ps[i] = &pending{body: b, done: make(chan bool, 1)}
	}
	c := &l.batches
	c.mu.Lock()
	c.queue = append(c.queue, ps...)
	lead := !c.writing
	c.writing = true
	c.mu.Unlock()
	for i, p := range ps {
		if i > 0 || !lead {
			// Written by another batch's writer (false), or this call
			// writes the next batch (true).
			lead = <-p.done
		}
		if lead {
			l.lead(ctx, bs, p)
		}
	}
	var first error
	for i, p := range ps {
		if p.err != nil {
			l.failed(rs[i], p.err)
			if first == nil {
				first = fmt.Errorf("%w: %w", ErrWrite, p.err)
			}
			continue
		}
		if l.tee != nil {
			l.tee(append([]byte(nil), p.body...))
		}
	}
	return first
}

// lead writes the next batch, which starts with p, and hands the one
// after it to its first record's writer.
func (l *Logger) lead(ctx context.Context, bs batchSink, p *pending) {
	c := &l.batches
	c.mu.Lock()
	n := min(len(c.queue), maxBatch)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()

	l.writeBatch(ctx, bs, batch)

	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- true // its writer writes the next batch
	} else {
		c.writing = false
		c.queue = nil
	}
	c.mu.Unlock()
	for _, q := range batch {
		if q != p {
			q.done <- false
		}
	}
}

// writeBatch chains and writes the records of batch under the file lock,
// and sets each one's error.
func (l *Logger) writeBatch(ctx context.Context, bs batchSink, batch []*pending) {
	fail := func(err error) {
		for _, q := range batch {
			q.err = err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ss, ok := l.sink.(sharedSink); ok {
		last, changed, torn, err := ss.lock()
		if err != nil {
			fail(err)
			return
		}
		defer ss.unlock()
		if changed {
			l.follow(last, torn)
		}
	}
	total := 0
	for _, q := range batch {
		total += len(q.body) + hashSuffix + 100
	}
	bp := lines.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 256<<10 {
			*bp = buf[:0]
			lines.Put(bp)
		}
	}()
	if rs, ok := l.sink.(rotatingSink); len(batch) == 1 || ok && rs.needsRotation(total+200) {
		// A lone record, or a batch that would cross a rotation: one
		// record at a time, as Log writes them on other sinks.
		for _, q := range batch {
			if q.err = l.startChain(ctx, len(q.body)); q.err == nil {
				buf = append(appendChained(buf[:0], q.body, l.prev), '\n')
				if q.err = bs.writeLines(ctx, buf); q.err == nil {
					l.prev = string(lineHash(buf[:len(buf)-1]))
				}
			}
		}
		return
	}
	if err := l.startChain(ctx, total); err != nil {
		fail(err)
		return
	}
	var prev []byte // the hash of the line before, in buf
	for i, q := range batch {
		start := len(buf)
		if i == 0 {
			buf = appendChained(buf, q.body, l.prev)
		} else {
			buf = appendChained(buf, q.body, prev)
		}
		prev = lineHash(buf[start:])
		buf = append(buf, '\n')
	}
	if err := bs.writeLines(ctx, buf); err != nil {
		fail(err)
		return
	}
	l.prev = string(prev)
}
