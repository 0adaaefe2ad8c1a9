package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxMessage caps one message from an upstream (one line of its
// stdout), as the Go SDK's stdio transport does.
const maxMessage = 16 << 20

// idPrefix starts the id of every tools/call we forward. The SDK's
// requests (the handshake, tools/list) have numeric ids, so a response
// whose id is a string with this prefix can only answer one of ours.
const idPrefix = "ms-"

// cancelTimeout bounds the sending of notifications/cancelled for a
// call given up on.
const cancelTimeout = 2 * time.Second

// maxGarbageShown caps what the server's log shows of a line from the
// upstream that is not JSON.
const maxGarbageShown = 256

var (
	// errGone: the upstream's stdout ended (it exited or closed it) or
	// the connection was closed.
	errGone = errors.New("upstream: the connection ended")
	// errOversize: the upstream sent a message over maxMessage; the
	// connection is closed, since nothing after it can be trusted to be
	// framed as the upstream meant.
	errOversize = fmt.Errorf("upstream: a message over %d MiB", maxMessage>>20)
	// errBroken: a message to the upstream was written in part (a write
	// that timed out), so the stream to it is no longer framed.
	errBroken = errors.New("upstream: a message to the upstream was cut short")
	// errStalled: the upstream did not read a message of the SDK's (an
	// answer to its request, say) for sdkWriteTimeout.
	errStalled = errors.New("upstream: it stopped reading its stdin")
)

// maxAsked bounds the upstream's own requests (ping, roots/list and the
// like) handed to the SDK and not answered yet: the SDK answers each on
// a goroutine of its own, which an upstream that does not read the
// answers could otherwise multiply without end. At it, the next is
// handed over only once one is answered, and nothing more is read from
// the upstream meanwhile; an answer it does not read within
// sdkWriteTimeout has it started again.
const maxAsked = 16

// sdkWriteTimeout bounds a write of the SDK's with no deadline of its
// own (an answer to the upstream's request): an upstream that does not
// read it meanwhile is started again.
var sdkWriteTimeout = 10 * time.Second

// wire is the connection to one upstream process: the only reader of
// its stdout and the only writer to its stdin. Our tools/call requests
// go out and their answers come back without the SDK (each answer is
// decoded once, into what a result needs); every other message (the
// handshake, tools/list, the upstream's notifications and requests) is
// passed to the SDK's client session through sdkConn, in the order
// read.
type wire struct {
	in  io.WriteCloser
	out io.ReadCloser
	log *slog.Logger

	// wlock is held (a token in it) while a message is written, so
	// messages never interleave; a channel, so a writer waiting for it
	// still honours its context.
	wlock chan struct{}
	// deadline is set on in before each write (when in supports it), so
	// a write to an upstream that stopped reading ends with the call.
	deadline interface{ SetWriteDeadline(time.Time) error }
	dl       time.Time // the deadline set last; guarded by wlock

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan reply
	err     error // why the connection ended; nil while it runs
	// meta holds the per-request _meta members the SDK sends with its
	// own calls under the stateless protocol (its version, our client
	// info and capabilities), as JSON members with a leading comma;
	// every call of ours carries them too.
	meta []byte

	// asked holds a token per request of the upstream's handed to the
	// SDK and not answered yet (see maxAsked).
	asked chan struct{}

	toSDK     chan []byte   // messages for the SDK, closed when the reader ends
	closed    chan struct{} // closed by close
	closeOnce sync.Once
	done      chan struct{} // closed when the reader has ended
}

// reply is the answer to one forwarded call.
type reply struct {
	res *callResult
	err error // a *jsonrpc.Error when the upstream refused the call
}

func newWire(in io.WriteCloser, out io.ReadCloser, log *slog.Logger) *wire {
	w := &wire{
		in: in, out: out, log: log,
		wlock:   make(chan struct{}, 1),
		pending: map[uint64]chan reply{},
		toSDK:   make(chan []byte, 16),
		asked:   make(chan struct{}, maxAsked),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	w.deadline, _ = in.(interface{ SetWriteDeadline(time.Time) error })
	go w.read()
	return w
}

// close ends the connection: both pipes are closed, which ends the
// reader, which fails the calls in flight.
func (w *wire) close() {
	w.closeOnce.Do(func() {
		close(w.closed)
		w.in.Close()
		w.out.Close()
	})
}

// fail ends the connection for reason: calls in flight and later ones
// get it.
func (w *wire) fail(reason error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = reason
	}
	reason = w.err
	pending := w.pending
	w.pending = nil
	w.mu.Unlock()
	for _, ch := range pending {
		ch <- reply{err: reason}
	}
}

// read reads the upstream's stdout a line at a time until it ends.
func (w *wire) read() {
	reason := errGone
	defer func() {
		w.fail(reason)
		w.close()
		close(w.toSDK)
		close(w.done)
	}()
	br := bufio.NewReaderSize(w.out, 64<<10)
	var long []byte // a line longer than br's buffer, so far
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) > maxMessage {
				reason = errOversize
				w.log.Warn("the upstream sent a message over the limit; closing the connection", "limit_bytes", maxMessage)
				return
			}
			long = append(long, chunk...)
			continue
		}
		line := chunk
		if long != nil {
			if len(long)+len(chunk) > maxMessage {
				reason = errOversize
				w.log.Warn("the upstream sent a message over the limit; closing the connection", "limit_bytes", maxMessage)
				return
			}
			line = append(long, chunk...)
			long = nil
		}
		if len(bytes.TrimSpace(line)) > 0 && !w.dispatch(line) {
			return
		}
		if err != nil {
			return
		}
	}
}

// response is a message from the upstream as far as routing it needs,
// with the result decoded as a tools/call result.
type response struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result *callResult     `json:"result"`
	Error  *jsonrpc.Error  `json:"error"`
}

// dispatch routes one line: the answer to a call of ours to it, anything
// else to the SDK. line is valid only until it returns. It reports false
// when the connection was closed meanwhile.
func (w *wire) dispatch(line []byte) bool {
	if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '[' && bytes.Contains(t, []byte(`"`+idPrefix)) {
		// A JSON-RPC batch holding an answer of ours (MCP has dropped
		// batches, and the SDK would drop answers it did not ask for):
		// each of its messages is taken on its own (one level only).
		var batch []json.RawMessage
		if json.Unmarshal(t, &batch) == nil {
			for _, m := range batch {
				if !w.dispatchOne(m) {
					return false
				}
			}
			return true
		}
	}
	return w.dispatchOne(line)
}

// dispatchOne is dispatch of one line or one message of a batch.
func (w *wire) dispatchOne(line []byte) bool {
	if bytes.Contains(line, []byte(`"`+idPrefix)) {
		var r response
		if err := json.Unmarshal(line, &r); err == nil {
			if id, ok := ourID(r.ID); ok && r.Method == "" {
				switch {
				case r.Error != nil:
					w.answer(id, reply{err: r.Error})
				case r.Result != nil:
					w.answer(id, reply{res: r.Result})
				default:
					w.answer(id, reply{err: errors.New("the upstream answered with neither a result nor an error")})
				}
				return true
			}
		} else {
			// Not a tools/call result: tell whether it answers one of ours
			// at all.
			var env struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal(line, &env) == nil {
				if id, ok := ourID(env.ID); ok && env.Method == "" {
					w.answer(id, reply{err: fmt.Errorf("the upstream's answer is not a tools/call result: %w", err)})
					return true
				}
			}
		}
	}
	if !json.Valid(line) {
		// Some servers write stray output to stdout; it is no message.
		shown := bytes.TrimSpace(line)
		if len(shown) > maxGarbageShown {
			shown = shown[:maxGarbageShown]
		}
		w.log.Warn("the upstream wrote a line that is not JSON to its stdout; dropped", "line", string(shown))
		return true
	}
	msg := bytes.Clone(line)
	select {
	case w.toSDK <- msg:
		return true
	case <-w.closed:
		return false
	}
}

// ourID reports whether raw is the id of a call of ours, and which.
func ourID(raw json.RawMessage) (uint64, bool) {
	if len(raw) < len(idPrefix)+3 || raw[0] != '"' || raw[len(raw)-1] != '"' || !bytes.HasPrefix(raw[1:], []byte(idPrefix)) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[1+len(idPrefix):len(raw)-1]), 10, 64)
	return n, err == nil
}

// answer hands r to call id; an answer to no call in flight (given up
// on, or never made) is dropped.
func (w *wire) answer(id uint64, r reply) {
	w.mu.Lock()
	ch, ok := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	if !ok {
		w.log.Debug("an upstream answer to no call in flight dropped", "id", idPrefix+strconv.FormatUint(id, 10))
		return
	}
	ch <- r
}

// write writes one message (a line) to the upstream.
func (w *wire) write(ctx context.Context, msg []byte) error {
	return w.writeCall(ctx, msg, 0)
}

// writeCall is write of the request of call id (0: a message of no call
// of ours). When ctx is cancelled before its deadline with part of msg
// written, it returns ctx's error at once, and the rest of msg is
// written meanwhile (finish), after which the upstream is told that call
// id was cancelled.
func (w *wire) writeCall(ctx context.Context, msg []byte, id uint64) error {
	select {
	case w.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.closed:
		return w.ended()
	}
	held := true // wlock, until handed to finish
	defer func() {
		if held {
			<-w.wlock
		}
	}()
	if err := ctx.Err(); err != nil {
		// Ended while waiting (the select above picks at random among
		// what is ready): nothing of the message goes out.
		return err
	}
	dl, bounded := ctx.Deadline()
	if w.deadline != nil && !dl.Equal(w.dl) {
		if w.deadline.SetWriteDeadline(dl) != nil {
			// Not a pipe the poller watches: no deadlines on it.
			w.deadline = nil
		} else {
			w.dl = dl
		}
	}
	var n int
	var err error
	switch {
	case ctx.Done() == nil:
		n, err = w.in.Write(msg)
	case w.deadline != nil:
		n, err = w.writeCancellable(ctx, msg)
		if err != nil && n > 0 && n < len(msg) && bounded && errors.Is(ctx.Err(), context.Canceled) {
			// Cancelled with part of the message out: cutting it would
			// have the upstream restarted. The rest is written as it
			// would have been without the cancel, until the deadline.
			held = false
			go w.finish(msg[n:], dl, id)
			return ctx.Err()
		}
	default:
		n, err = w.writeUntil(ctx, msg)
	}
	if err != nil {
		if n > 0 {
			// The upstream would read the rest of this message as the
			// start of the next one.
			w.mu.Lock()
			if w.err == nil {
				w.err = errBroken
			}
			w.mu.Unlock()
			w.close()
		}
		if bounded && w.deadline != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// ctx's deadline, which ends ctx at once if not already.
			<-ctx.Done()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", errGone, err)
	}
	return nil
}

// writeCancellable writes msg to a pipe that takes deadlines, and ends
// the write when ctx is cancelled before its deadline, by moving the
// deadline to the past. The caller holds wlock.
func (w *wire) writeCancellable(ctx context.Context, msg []byte) (int, error) {
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		w.deadline.SetWriteDeadline(longAgo)
	})
	n, err := w.in.Write(msg)
	if !stop() {
		// The deadline is in the past now: the next write sets its own.
		<-fired
		w.dl = longAgo
	}
	return n, err
}

// finish writes rest, the end of a message whose call was cancelled, by
// deadline dl, then releases wlock, which the caller hands over, and
// tells the upstream that call id (if not 0) was cancelled. If rest
// cannot be written, the connection is broken: it is closed.
func (w *wire) finish(rest []byte, dl time.Time, id uint64) {
	err := w.deadline.SetWriteDeadline(dl)
	if err == nil {
		w.dl = dl
		_, err = w.in.Write(rest)
	}
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = errBroken
		}
		w.mu.Unlock()
		w.close()
	}
	<-w.wlock
	if err == nil && id != 0 {
		w.cancel(id, context.Canceled)
	}
}

// longAgo is a deadline that has passed.
var longAgo = time.Unix(1, 0)

// writeUntil writes msg to a pipe that takes no deadline, and returns
// when ctx ends if the write has not: the connection is then closed (the
// upstream would read the rest of the message as the start of the next).
// So a call over such a pipe ends with its context too
// (plugin.Tool.Bounded).
func (w *wire) writeUntil(ctx context.Context, msg []byte) (int, error) {
	type wrote struct {
		n   int
		err error
	}
	done := make(chan wrote, 1)
	go func() {
		n, err := w.in.Write(msg)
		done <- wrote{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // written meanwhile
			return r.n, r.err
		default:
		}
		w.mu.Lock()
		if w.err == nil {
			w.err = errBroken
		}
		w.mu.Unlock()
		// The write ends when the closed pipe ends it (a pipe of its
		// own) or when the upstream is stopped (a file whose close
		// waits for the write): not waited for. No other message can
		// follow it into the closed file.
		w.close()
		return 0, ctx.Err()
	}
}

// ended is why the connection ended.
func (w *wire) ended() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return errGone
}

// call forwards tools/call for tool with args (a JSON object) and, when
// token is set, that progress token, and waits for the answer. When ctx
// ends first, the upstream is told (notifications/cancelled) and ctx's
// error returned.
func (w *wire) call(ctx context.Context, tool string, args json.RawMessage, token string) (*callResult, error) {
	ch := make(chan reply, 1)
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return nil, err
	}
	w.next++
	id := w.next
	w.pending[id] = ch
	meta := w.meta
	w.mu.Unlock()
	msg := appendCall(make([]byte, 0, 160+len(meta)+len(args)), id, tool, args, token, meta)
	// A request cancelled while it is written still reaches the upstream
	// whole (writeCall): it is then told of the cancel.
	if err := w.writeCall(ctx, msg, id); err != nil {
		w.forget(id)
		return nil, err
	}
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		if w.forget(id) {
			go w.cancel(id, ctx.Err())
		}
		return nil, ctx.Err()
	}
}

// forget removes call id from those in flight; false when it was not
// (answered, or the connection ended).
func (w *wire) forget(id uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.pending[id]
	delete(w.pending, id)
	return ok
}

// cancel tells the upstream that call id was given up on.
func (w *wire) cancel(id uint64, why error) {
	ctx, stop := context.WithTimeout(context.Background(), cancelTimeout)
	defer stop()
	msg := []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"` + idPrefix)
	msg = strconv.AppendUint(msg, id, 10)
	msg = append(msg, `","reason":`...)
	msg = appendString(msg, why.Error())
	msg = append(msg, "}}\n"...)
	if err := w.write(ctx, msg); err != nil {
		w.log.Debug("telling the upstream a call was cancelled failed", "err", err)
	}
}

// appendCall appends a tools/call request as one line. The log level
// for the call's messages is asked in _meta (under the stateless
// protocol it is asked per request; earlier versions ignore the key),
// followed by meta (members with a leading comma).
func appendCall(dst []byte, id uint64, tool string, args json.RawMessage, token string, meta []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":"`+idPrefix...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `","method":"tools/call","params":{"name":`...)
	dst = appendString(dst, tool)
	dst = append(dst, `,"arguments":`...)
	switch {
	case len(bytes.TrimSpace(args)) == 0:
		dst = append(dst, "{}"...)
	case bytes.IndexByte(args, '\n') >= 0 || bytes.IndexByte(args, '\r') >= 0:
		// A message is one line: whitespace between tokens goes.
		var b bytes.Buffer
		if err := json.Compact(&b, args); err != nil {
			dst = append(dst, "{}"...)
		} else {
			dst = append(dst, b.Bytes()...)
		}
	default:
		dst = append(dst, args...)
	}
	dst = append(dst, `,"_meta":{"`+mcp.MetaKeyLogLevel+`":"`+relayLevel+`"`...)
	if token != "" {
		dst = append(dst, `,"progressToken":`...)
		dst = appendString(dst, token)
	}
	dst = append(dst, meta...)
	return append(dst, "}}}\n"...)
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// sdkConn is the SDK client session's side of a wire: it reads the
// messages the wire does not route itself and writes through the wire.
type sdkConn struct {
	w     *wire
	queue []jsonrpc.Message // the rest of a batch read
}

var _ mcp.Connection = (*sdkConn)(nil)

// sdkTransport hands the SDK client its side of a wire.
type sdkTransport struct{ w *wire }

var _ mcp.Transport = sdkTransport{}

// Connect implements mcp.Transport.
func (t sdkTransport) Connect(context.Context) (mcp.Connection, error) {
	return &sdkConn{w: t.w}, nil
}

// Read implements mcp.Connection.
func (c *sdkConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	if len(c.queue) > 0 {
		m := c.queue[0]
		c.queue = c.queue[1:]
		return c.ask(ctx, m)
	}
	var data []byte
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case d, ok := <-c.w.toSDK:
		if !ok {
			return nil, io.EOF
		}
		data = d
	}
	if data = bytes.TrimSpace(data); data[0] != '[' {
		m, err := jsonrpc.DecodeMessage(data)
		if err != nil {
			return nil, err
		}
		return c.ask(ctx, m)
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(data, &batch); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return nil, errors.New("upstream: an empty batch")
	}
	for _, raw := range batch {
		m, err := jsonrpc.DecodeMessage(raw)
		if err != nil {
			return nil, err
		}
		c.queue = append(c.queue, m)
	}
	m := c.queue[0]
	c.queue = c.queue[1:]
	return c.ask(ctx, m)
}

// ask hands m over, once a request of the upstream's among maxAsked
// unanswered when it is one.
func (c *sdkConn) ask(ctx context.Context, m jsonrpc.Message) (jsonrpc.Message, error) {
	if req, ok := m.(*jsonrpc.Request); !ok || !req.IsCall() {
		return m, nil
	}
	select {
	case c.w.asked <- struct{}{}:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.w.closed:
		return nil, io.EOF
	}
}

// sessionMeta are the _meta members the SDK sends with each call under
// the stateless protocol (SEP-2575).
var sessionMeta = []string{mcp.MetaKeyProtocolVersion, mcp.MetaKeyClientInfo, mcp.MetaKeyClientCapabilities}

// Write implements mcp.Connection. The session's _meta members of the
// SDK's calls (tools/list among them, before any call of ours) are
// kept for our calls.
func (c *sdkConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() && len(req.Params) > 0 {
		var p struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		}
		if json.Unmarshal(req.Params, &p) == nil && p.Meta[sessionMeta[0]] != nil {
			var meta []byte
			for _, k := range sessionMeta {
				if v, ok := p.Meta[k]; ok {
					meta = append(appendString(append(meta, ','), k), ':')
					meta = append(meta, v...)
				}
			}
			c.w.mu.Lock()
			c.w.meta = meta
			c.w.mu.Unlock()
		}
	}
	if _, ok := msg.(*jsonrpc.Response); ok {
		// An answer to a request of the upstream's frees its token,
		// whether or not it is written.
		defer func() {
			select {
			case <-c.w.asked:
			default:
			}
		}()
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("upstream: encoding a message: %w", err)
	}
	if _, ok := ctx.Deadline(); ok {
		return c.w.write(ctx, append(data, '\n'))
	}
	wctx, cancel := context.WithTimeoutCause(ctx, sdkWriteTimeout, errStalled)
	defer cancel()
	err = c.w.write(wctx, append(data, '\n'))
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), errStalled) {
		c.w.log.Warn("the upstream stopped reading its stdin; closing the connection", "after", sdkWriteTimeout)
		c.w.fail(errStalled)
		c.w.close()
		return errStalled
	}
	return err
}

// Close implements mcp.Connection: the SDK closing its session ends the
// connection.
func (c *sdkConn) Close() error {
	c.w.close()
	return nil
}

// SessionID implements mcp.Connection.
func (c *sdkConn) SessionID() string { return "" }
