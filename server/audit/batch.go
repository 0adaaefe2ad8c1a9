package audit

import (
	"context"
	"fmt"
	"slices"
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

// pending is one caller's records waiting to be written, all in one
// batch.
type pending struct {
	bodies [][]byte
	// errs is each record's error, set by the batch's writer.
	errs []error
	// done receives once the records are written (false) or when their
	// writer is to write the next batch (true).
	done chan bool
	// one holds the body of a lone record.
	one [1][]byte
}

// pendings are reused: a pending's done is empty once its caller has
// its result.
var pendings = sync.Pool{New: func() any { return &pending{done: make(chan bool, 1)} }}

// committer queues records for the next batch.
type committer struct {
	mu      sync.Mutex
	queue   []*pending
	writing bool
}

// maxBatch caps the records of one batch; a caller's records are never
// split, so a batch of one caller may hold more.
const maxBatch = 256

// commit writes body, chained, in the next batch, and returns that
// batch's result for it.
func (l *Logger) commit(ctx context.Context, bs batchSink, r Record, body []byte) error {
	p := pendings.Get().(*pending)
	p.one[0] = body
	p.bodies = p.one[:]
	rs := [1]Record{r}
	return l.commitPending(ctx, bs, p, rs[:])
}

// commitAll queues bodies, in order, for the next batch, all of them in
// it, and returns once they are written, with the first error.
func (l *Logger) commitAll(ctx context.Context, bs batchSink, rs []Record, bodies [][]byte) error {
	p := pendings.Get().(*pending)
	p.bodies = bodies
	return l.commitPending(ctx, bs, p, rs)
}

// commitPending queues p for the next batch and returns once its records
// are written, with the first error; rs are the records of its bodies.
// It returns p to the pool.
func (l *Logger) commitPending(ctx context.Context, bs batchSink, p *pending, rs []Record) error {
	p.errs = slices.Grow(p.errs[:0], len(p.bodies))[:len(p.bodies)]
	c := &l.batches
	c.mu.Lock()
	c.queue = append(c.queue, p)
	lead := !c.writing
	c.writing = true
	c.mu.Unlock()
	if !lead {
		// Written by another batch's writer (false), or this call
		// writes the next batch (true).
		lead = <-p.done
	}
	if lead {
		l.lead(ctx, bs, p)
	}
	var first error
	for i, err := range p.errs {
		if err != nil {
			l.failed(rs[i], err)
			if first == nil {
				first = fmt.Errorf("%w: %w", ErrWrite, err)
			}
			continue
		}
		if l.tee != nil {
			l.tee(append([]byte(nil), p.bodies[i]...))
		}
	}
	clear(p.errs)
	p.bodies, p.one[0] = nil, nil
	pendings.Put(p)
	return first
}

// lead writes the next batch, which starts with p, and hands the one
// after it to its first caller.
func (l *Logger) lead(ctx context.Context, bs batchSink, p *pending) {
	c := &l.batches
	c.mu.Lock()
	n, records := 0, 0
	for n < len(c.queue) && (n == 0 || records+len(c.queue[n].bodies) <= maxBatch) {
		records += len(c.queue[n].bodies)
		n++
	}
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()

	l.writeBatch(ctx, bs, batch)

	for _, q := range batch {
		if q != p {
			q.done <- false
		}
	}
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- true // its caller writes the next batch
	} else {
		c.writing = false
		// The batch's array takes the next records (its callers are
		// answered: nothing reads it any more).
		clear(batch)
		c.queue = batch[:0:cap(batch)]
	}
	c.mu.Unlock()
}

// writeBatch chains and writes the records of batch under the file lock,
// and sets each one's error.
func (l *Logger) writeBatch(ctx context.Context, bs batchSink, batch []*pending) {
	fail := func(err error) {
		for _, q := range batch {
			for i := range q.errs {
				q.errs[i] = err
			}
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
	total, records := 0, 0
	for _, q := range batch {
		for _, body := range q.bodies {
			total += len(body) + hashSuffix + 100
			records++
		}
	}
	bp := lines.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 256<<10 {
			*bp = buf[:0]
			lines.Put(bp)
		}
	}()
	if rs, ok := l.sink.(rotatingSink); records == 1 || ok && rs.needsRotation(total+200) {
		// A lone record, or a batch that would cross a rotation: one
		// record at a time, as Log writes them on other sinks.
		for _, q := range batch {
			for i, body := range q.bodies {
				if q.errs[i] = l.startChain(ctx, len(body)); q.errs[i] == nil {
					buf = append(appendChained(buf[:0], body, l.prev), '\n')
					if q.errs[i] = bs.writeLines(ctx, buf); q.errs[i] == nil {
						l.prev = string(lineHash(buf[:len(buf)-1]))
					}
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
	first := true
	for _, q := range batch {
		for _, body := range q.bodies {
			start := len(buf)
			if first {
				buf = appendChained(buf, body, l.prev)
				first = false
			} else {
				buf = appendChained(buf, body, prev)
			}
			prev = lineHash(buf[start:])
			buf = append(buf, '\n')
		}
	}
	if err := bs.writeLines(ctx, buf); err != nil {
		fail(err)
		return
	}
	l.prev = string(prev)
}
