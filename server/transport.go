package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Limits on one inbound message.
const (
	DefaultMaxMessageBytes = 1 << 20 // 1 MiB per line
	DefaultMaxDepth        = 64      // nesting of arrays and objects
)

// requestIDMeta is the _meta key under which the transport hands the
// JSON-RPC id of a tools/call to the pipeline. Whatever a client puts
// there is overwritten.
const requestIDMeta = "io.mcp-secure/request-id"

// requestIDKey is the context key under which the fast lane hands the
// pipeline a call's request id when its _meta held nothing else (no
// _meta is decoded then).
type requestIDKey struct{}

// requestIDOf is a call's request id: the fast lane's, or the one the
// transport added to its _meta.
func requestIDOf(ctx context.Context, meta map[string]any) (string, bool) {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return id, true
	}
	id, ok := meta[requestIDMeta].(string)
	return id, ok
}

// StdioTransport is newline-delimited JSON-RPC over a reader and a writer.
//
// Unlike a plain decoder loop, it never gives up on the stream because of
// one bad message: a line that is not JSON, not valid UTF-8, too long, too
// deeply nested, a batch or not a JSON-RPC message is answered with a
// JSON-RPC error (keeping the id when one can be read) and the next line is
// served.
//
// It answers every request it delivered before it reports the end of the
// stream: at EOF (a client that writes its requests and closes stdin) or
// on [StdioTransport.Shutdown], it stops delivering and waits for the
// answers to the requests in flight, up to DrainTimeout, then calls
// OnDrainTimeout (which cancels them, so each is answered as cancelled)
// and waits a little more before Read returns io.EOF.
type StdioTransport struct {
	In              io.Reader
	Out             io.Writer
	MaxMessageBytes int // 0 means DefaultMaxMessageBytes
	MaxDepth        int // 0 means DefaultMaxDepth
	// MaxInFlight caps the requests delivered and not yet answered; the
	// excess is answered with an error at once. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// DrainTimeout bounds the wait for answers at EOF; 0 means no wait
	// (Read reports EOF as soon as the input ends).
	DrainTimeout time.Duration
	// OnDrainTimeout is called when requests are still in flight after
	// the wait; it should make them end.
	OnDrainTimeout func()
	// OnEnd, if set, is called once when Read reports the end of input.
	OnEnd  func()
	Logger *slog.Logger

	// fast, if set, answers the requests it takes without the SDK
	// (fastlane.go).
	fast *fastLane

	mu   sync.Mutex
	conn *stdioConn
}

// DefaultMaxInFlight is the default cap on requests in flight.
const DefaultMaxInFlight = 256

// cancelGrace is how long requests cancelled at shutdown get to answer.
const cancelGrace = 5 * time.Second

var _ mcp.Transport = (*StdioTransport)(nil)

// Connect starts reading In.
func (t *StdioTransport) Connect(context.Context) (mcp.Connection, error) {
	c := &stdioConn{
		out:       newLineWriter(t.Out),
		maxBytes:  t.MaxMessageBytes,
		maxDepth:  t.MaxDepth,
		maxFlight: t.MaxInFlight,
		drainFor:  t.DrainTimeout,
		onTimeout: t.OnDrainTimeout,
		onEnd:     t.OnEnd,
		log:       t.Logger,
		fast:      t.fast,
		incoming:  make(chan readResult),
		closed:    make(chan struct{}),
		stopping:  make(chan struct{}),
		eof:       make(chan struct{}),
		inflight:  map[string]string{},
		dropped:   map[string]bool{},
	}
	if c.maxFlight <= 0 {
		c.maxFlight = DefaultMaxInFlight
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxMessageBytes
	}
	if c.maxDepth <= 0 {
		c.maxDepth = DefaultMaxDepth
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.out.written = c.posted
	c.out.failed = func(err error) {
		// No answer can be written any more: the calls in flight finish
		// (or are cancelled after the drain's grace) so that their audit
		// records are written, and the stream ends as at the end of input.
		c.log.Error("writing to stdout failed: the client is gone; finishing the calls in flight", "err", err)
		go c.finish(c.drainFor)
	}
	t.mu.Lock()
	t.conn = c
	t.mu.Unlock()
	go c.readLoop(bufio.NewReaderSize(t.In, 64<<10))
	return c, nil
}

// Shutdown stops reading: no request is delivered after it. The requests
// in flight get grace to finish; then OnDrainTimeout cancels them, and
// once they are answered (or after a further bound) Read reports EOF.
func (t *StdioTransport) Shutdown(grace time.Duration) {
	t.mu.Lock()
	c := t.conn
	t.mu.Unlock()
	if c != nil {
		go c.finish(grace)
	}
}

type readResult struct {
	msg jsonrpc.Message
	err error
	// more says more input was already buffered when msg was read.
	more bool
}

type stdioConn struct {
	out       *lineWriter
	maxBytes  int
	maxDepth  int
	maxFlight int
	drainFor  time.Duration
	onTimeout func()
	onEnd     func()
	log       *slog.Logger
	fast      *fastLane
	// handoff is a call the reader runs itself once it has handed the
	// reading of the input to another goroutine; set by the fast lane,
	// only on the reader.
	handoff func()

	incoming chan readResult

	closeOnce sync.Once
	closed    chan struct{}

	// Requests delivered and not yet answered, by id, and answers on
	// their way out: a request's id is free again once its answer is
	// queued (the client may reuse it as soon as it reads the answer),
	// but the stream ends only once the answer is written.
	fmu      sync.Mutex
	inflight map[string]string // method by request id
	// dropped are the requests in flight the client cancelled: their
	// answers are not written (the client expects none), and their ids
	// stay in flight until the call has ended and answered.
	dropped   map[string]bool
	unwritten int           // answers queued and not yet written
	idle      chan struct{} // closed when both are none, while draining
	// room is closed when an answer is written, while the reader waits
	// for the answers not yet written to leave room (waitRoom).
	room chan struct{}
	// protocol is the version the initialize answer negotiated; "" until
	// then, and for the stateless protocol.
	protocol string

	stopOnce sync.Once
	stopping chan struct{} // closed when nothing more is delivered
	eofOnce  sync.Once
	eof      chan struct{} // closed when Read reports EOF
}

func (c *stdioConn) SessionID() string { return "" }

func (c *stdioConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-c.incoming:
		return r.msg, r.err
	case <-c.eof:
		return nil, io.EOF
	case <-c.closed:
		return nil, io.EOF
	}
}

// idKey tells ids apart by type as well as value: 1 and "1" differ.
func idKey(id jsonrpc.ID) string {
	if k, ok := fastIDKey(id); ok {
		return k
	}
	switch v := id.Raw().(type) {
	case string:
		return "s:" + v
	default:
		return fmt.Sprintf("n:%v", v)
	}
}

// admit records a request about to be delivered. It refuses an id that
// is already in flight (its answer could not be told apart) and a request
// over the in-flight cap.
func (c *stdioConn) admit(req *jsonrpc.Request) (code int64, msg string, ok bool) {
	if !req.ID.IsValid() {
		return 0, "", true // a notification: nothing to answer
	}
	k := idKey(req.ID)
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if _, dup := c.inflight[k]; dup {
		return jsonrpc.CodeInvalidRequest, fmt.Sprintf("request id %s is already in flight; ids must be unique among requests in flight", idString(req.ID)), false
	}
	if len(c.inflight) >= c.maxFlight {
		return codeBusy, fmt.Sprintf("too many requests in flight (limit %d); send more as earlier ones are answered", c.maxFlight), false
	}
	c.inflight[k] = req.Method
	return 0, "", true
}

// codeBusy is the implementation-defined JSON-RPC error for a request
// over the in-flight cap.
const codeBusy = -32000

// undelivered forgets a request that was never delivered.
func (c *stdioConn) undelivered(id jsonrpc.ID) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	delete(c.inflight, idKey(id))
	c.checkIdle()
}

// answering forgets a request whose answer is about to be queued, and
// counts the answer as on its way out until wrote says it is written.
// For a request the client cancelled it reports drop: its answer is not
// to be written.
func (c *stdioConn) answering(id jsonrpc.ID) (drop bool) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	k := idKey(id)
	delete(c.inflight, k)
	if c.dropped[k] {
		delete(c.dropped, k)
		c.checkIdle()
		return true
	}
	c.unwritten++
	return false
}

// cancelling marks a request in flight as cancelled by the client.
func (c *stdioConn) cancelling(id jsonrpc.ID) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if k := idKey(id); c.inflight[k] != "" {
		c.dropped[k] = true
	}
}

// wrote counts n answers written (or failed to be).
func (c *stdioConn) wrote(n int) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.unwritten -= n
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	c.checkIdle()
}

// waitRoom holds the reader back while the requests in flight and the
// answers not yet written reach the in-flight cap because answers wait
// for the client to read them: a client that does not read its output
// holds back its own input, instead of growing the server's queue of
// answers (and the goroutines writing them) without end. It reports
// false when the stream ends meanwhile.
func (c *stdioConn) waitRoom() bool {
	for {
		c.fmu.Lock()
		if c.unwritten == 0 || len(c.inflight)+c.unwritten < c.maxFlight {
			c.fmu.Unlock()
			return true
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.fmu.Unlock()
		select {
		case <-room:
		case <-c.closed:
			return false
		case <-c.stopping:
			return false
		}
	}
}

// checkIdle wakes a drain once no request is in flight and no answer
// on its way out. The caller holds c.fmu.
func (c *stdioConn) checkIdle() {
	if len(c.inflight) == 0 && c.unwritten == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// alone reports whether one request is in flight.
func (c *stdioConn) alone() bool {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	return len(c.inflight) == 1
}

// waitIdle waits until no request is in flight, or d has passed; it
// reports whether all were answered.
func (c *stdioConn) waitIdle(d time.Duration) bool {
	c.fmu.Lock()
	if len(c.inflight) == 0 && c.unwritten == 0 {
		c.fmu.Unlock()
		return true
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.fmu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	case <-c.closed:
		return true
	}
}

// finish ends the stream: it stops delivering, waits for the answers in
// flight up to grace, cancels what is left, waits for its answers, and
// reports EOF.
func (c *stdioConn) finish(grace time.Duration) {
	c.stopOnce.Do(func() { close(c.stopping) })
	if grace > 0 && !c.waitIdle(grace) {
		c.log.Warn("requests still in flight at the end of input; cancelling them")
		if c.onTimeout != nil {
			c.onTimeout()
		}
		if !c.waitIdle(cancelGrace) {
			c.log.Error("requests still unanswered after cancellation; closing")
		}
	}
	c.eofOnce.Do(func() {
		close(c.eof)
		if c.onEnd != nil {
			c.onEnd()
		}
	})
}

func (c *stdioConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	resp, isResp := msg.(*jsonrpc.Response)
	if isResp {
		// The id is free once the answer is queued, but a drain at the
		// end of input waits until it is written, so the process cannot
		// end with an answer still on its way out.
		c.polish(resp)
		if c.answering(resp.ID) {
			return nil // cancelled: the client expects no answer
		}
		defer c.wrote(1)
		if responseFits(resp) {
			if err := c.out.write(func(b []byte) []byte { return append(appendResponse(b, resp), '\n') }); err != nil {
				return fmt.Errorf("write message: %w", err)
			}
			return nil
		}
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	return c.writeLine(data)
}

// post writes the answer to a tools/call or a ping the fast lane took,
// a success, without waiting for the write when another is under way:
// the answer counts as on its way out until its line is written
// (posted), so a drain at the end of input still waits for it.
func (c *stdioConn) post(id jsonrpc.ID, result []byte) {
	if c.answering(id) {
		return // cancelled: the client expects no answer
	}
	c.out.post(answerFill(c, id, result))
}

// answer is one result of postAll.
type answer struct {
	id     jsonrpc.ID
	result []byte
}

// postAll posts the answers as post does each, in one write when no
// write is under way.
func (c *stdioConn) postAll(as []answer) {
	lines := make([]func([]byte) []byte, 0, len(as))
	for _, a := range as {
		if !c.answering(a.id) {
			lines = append(lines, answerFill(c, a.id, a.result))
		}
	}
	if len(lines) == 0 {
		return
	}
	c.out.postN(len(lines), func(b []byte) []byte {
		for _, line := range lines {
			b = line(b)
		}
		return b
	})
}

// answerFill returns what appends the answer line of result to a
// buffer.
func answerFill(c *stdioConn, id jsonrpc.ID, result []byte) func([]byte) []byte {
	resp := &jsonrpc.Response{ID: id, Result: result}
	if responseFits(resp) {
		return func(b []byte) []byte { return append(appendResponse(b, resp), '\n') }
	}
	data, err := jsonrpc.EncodeMessage(resp)
	if err != nil {
		c.log.Error("encoding an answer", "err", err)
		data, _ = jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the answer could not be encoded"}})
	}
	return func(b []byte) []byte { return append(append(b, data...), '\n') }
}

// posted counts the posted answers of a batch written.
func (c *stdioConn) posted(n int, err error) {
	if err != nil {
		c.log.Error("writing answers", "answers", n, "err", err)
	}
	c.wrote(n)
}

// polish adjusts an answer before it is written: an invalid-params error
// says what is wrong in the client's terms (not the server's injected
// _meta or Go type names), a session of a protocol before 2026-07-28 gets
// no fields of the later one, and the initialize answer tells the
// negotiated version.
func (c *stdioConn) polish(resp *jsonrpc.Response) {
	c.fmu.Lock()
	method := c.inflight[idKey(resp.ID)]
	c.fmu.Unlock()
	if resp.Error != nil {
		var we *jsonrpc.Error
		switch {
		case errors.As(resp.Error, &we) && we.Code == jsonrpc.CodeInvalidParams:
			resp.Error = &jsonrpc.Error{Code: we.Code, Message: cleanParamsError(method, resp.Error.Error()), Data: we.Data}
		case we == nil || we.Code == 0:
			// A plain error, which the SDK sends with code 0 (JSON-RPC
			// defines none): the session's refusal of a request out of
			// turn is an invalid request, anything else an internal
			// error.
			code := int64(jsonrpc.CodeInternalError)
			if msg := resp.Error.Error(); strings.Contains(msg, "invalid during session initialization") || strings.HasPrefix(msg, "duplicate ") {
				code = jsonrpc.CodeInvalidRequest
			}
			resp.Error = &jsonrpc.Error{Code: code, Message: resp.Error.Error()}
		}
		return
	}
	switch method {
	case "initialize":
		var r struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		if json.Unmarshal(resp.Result, &r) == nil {
			c.fmu.Lock()
			c.protocol = r.ProtocolVersion
			c.fmu.Unlock()
		}
	case "tools/list":
		c.fmu.Lock()
		old := c.protocol != "" && c.protocol < statelessProtocol
		c.fmu.Unlock()
		if old {
			resp.Result = withoutCacheFields(resp.Result)
		}
	}
}

// cacheFields is how the SDK starts a list result: the 2026-07-28 cache
// hints first. Cutting them off is cheaper than decoding a long tool list.
var cacheFields = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\{"ttlMs":[0-9]+,"cacheScope":"[a-z]*",?`)
})

// withoutCacheFields drops ttlMs and cacheScope from a list result.
func withoutCacheFields(obj json.RawMessage) json.RawMessage {
	if loc := cacheFields().FindIndex(obj); loc != nil {
		out := make(json.RawMessage, 0, len(obj)-loc[1]+1)
		out = append(append(out, '{'), obj[loc[1]:]...)
		if json.Valid(out) {
			return out
		}
	}
	return withoutKeys(obj, "ttlMs", "cacheScope")
}

// withoutKeys drops keys from a JSON object, or returns it unchanged.
func withoutKeys(obj json.RawMessage, keys ...string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return obj
	}
	for _, k := range keys {
		delete(m, k)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return obj
	}
	return out
}

// goField matches encoding/json's description of a field it could not
// fill: "Go struct field mcp.CallToolParamsRaw.name of type string".
var goField = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`Go struct field [\w.*\[\]]*?\.?([\w]+) of type ([\w.*\[\]]+)`)
})

// cleanParamsError rewrites the SDK's invalid-params message, which
// quotes the params as the server holds them (with the _meta the
// transport injected) and names Go types, into one about the client's
// JSON.
func cleanParamsError(method, msg string) string {
	where := "invalid params"
	if method != "" {
		where = fmt.Sprintf("invalid params for %q", method)
	}
	if m := goField().FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s: %q must be %s", where, m[1], jsonKind(m[2]))
	}
	if strings.Contains(msg, "unmarshal") || strings.Contains(msg, "Go ") || strings.Contains(msg, requestIDMeta) {
		return where + ": params do not have the shape the method takes"
	}
	return msg
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(goType string) string {
	switch t := strings.TrimLeft(goType, "*"); {
	case t == "string":
		return "a string"
	case t == "bool":
		return "a boolean"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	default:
		return "an object"
	}
}

func (c *stdioConn) writeLine(data []byte) error {
	if err := c.out.writeLine(data); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return nil
}

func (c *stdioConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *stdioConn) deliver(r readResult) bool {
	select {
	case <-c.stopping:
		return false
	default:
	}
	if req, ok := r.msg.(*jsonrpc.Request); ok {
		if req.ID.IsValid() && !c.waitRoom() {
			return false
		}
		if code, msg, ok := c.admit(req); !ok {
			c.reject(&req.ID, code, msg)
			return true
		}
		if req.Method == "notifications/cancelled" {
			c.cancelled(req.Params)
		}
		if c.fast != nil && req.ID.IsValid() && c.fast.take(c, req, !r.more && c.alone()) {
			return true
		}
	}
	select {
	case c.incoming <- r:
		return true
	case <-c.closed:
		return false
	case <-c.stopping:
		if req, ok := r.msg.(*jsonrpc.Request); ok && req.ID.IsValid() {
			c.undelivered(req.ID)
		}
		return false
	}
}

// cancelled handles the client's cancellation of a request in flight:
// the call is cancelled (the fast lane's here; the SDK's by the SDK), and
// its answer, which still comes once the call has ended, is not written
// (the client expects none). Its id stays in flight until then: a
// request that reuses it before is refused as a duplicate, so it can
// never be taken for the cancelled one's answer.
func (c *stdioConn) cancelled(params json.RawMessage) {
	var p struct {
		RequestID any `json:"requestId"`
	}
	if json.Unmarshal(params, &p) != nil || p.RequestID == nil {
		return
	}
	id, err := jsonrpc.MakeID(p.RequestID)
	if err != nil || !id.IsValid() {
		return
	}
	c.cancelling(id)
	if c.fast != nil {
		c.fast.cancel(id)
	}
}

func (c *stdioConn) readLoop(r *bufio.Reader) {
	for {
		line, tooLong, err := readLine(r, c.maxBytes)
		if tooLong {
			c.reject(nil, jsonrpc.CodeInvalidRequest, fmt.Sprintf("message exceeds %d bytes", c.maxBytes))
		} else if len(bytes.TrimSpace(line)) > 0 {
			if msg := c.decode(line); msg != nil && !c.deliver(readResult{msg: msg, more: r.Buffered() > 0}) {
				return
			}
			if run := c.handoff; run != nil {
				c.handoff = nil
				if err == nil {
					handlers.Go(func() { c.readLoop(r) })
					run()
					return
				}
				// The input ended with this line: nothing more to read
				// (a terminal would wait for more), so no one reads on.
				run()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.log.Error("reading stdin", "err", err)
			}
			// Every request read before the end is answered first.
			c.finish(c.drainFor)
			return
		}
	}
}

// readLine returns the next line without its terminator. A line longer than
// limit is consumed to its end and reported as tooLong, so the stream stays
// in step.
func readLine(r *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > limit+2 { // room for "\r\n"
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		if !tooLong && len(line) > limit {
			tooLong, line = true, nil
		}
		return line, tooLong, err
	}
}

// decode turns one line into a message for the SDK, or answers it with an
// error and returns nil.
func (c *stdioConn) decode(line []byte) jsonrpc.Message {
	if !utf8.Valid(line) {
		c.reject(nil, jsonrpc.CodeParseError, "message is not valid UTF-8")
		return nil
	}
	if d := depth(line); d > c.maxDepth {
		// Answered under its id when the id can be read without
		// descending into what nests (a decoder would refuse the depth
		// too), so that the client's request is not left unanswered.
		c.reject(topLevelID(line), jsonrpc.CodeInvalidRequest, fmt.Sprintf("message nests deeper than %d levels", c.maxDepth))
		return nil
	}
	if !json.Valid(line) {
		c.reject(nil, jsonrpc.CodeParseError, "message is not valid JSON")
		return nil
	}
	if line = bytes.TrimSpace(line); line[0] == '[' {
		c.reject(nil, jsonrpc.CodeInvalidRequest, "JSON-RPC batches are not supported")
		return nil
	}
	msg, err := decodeMessage(line)
	if errors.Is(err, errUnfaithfulID) {
		c.reject(nil, jsonrpc.CodeInvalidRequest, err.Error())
		return nil
	}
	if err != nil {
		c.reject(peekID(line), jsonrpc.CodeInvalidRequest, "not a JSON-RPC 2.0 message: "+err.Error())
		return nil
	}
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == "server/discover" && req.ID.IsValid() {
		if missing := discoverMissing(req.Params); missing != "" {
			c.reject(&req.ID, jsonrpc.CodeInvalidParams, "server/discover (protocol 2026-07-28 and later) needs params._meta with "+missing)
			return nil
		}
	}
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == "tools/call" && req.ID.IsValid() {
		params, ok := spliceRequestID(req.Params, req.ID)
		if !ok {
			params, err = withRequestID(req.Params, req.ID)
		}
		if err != nil {
			c.reject(&req.ID, jsonrpc.CodeInvalidParams, "tools/call params must be an object")
			return nil
		}
		req.Params = params
	}
	return msg
}

// discoverMissing names what a server/discover request lacks of the
// _meta the stateless protocol requires, or returns "".
func discoverMissing(params json.RawMessage) string {
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	_ = json.Unmarshal(params, &p)
	var version string
	_ = json.Unmarshal(p.Meta["io.modelcontextprotocol/protocolVersion"], &version)
	var missing []string
	if version < statelessProtocol {
		missing = append(missing, `"io.modelcontextprotocol/protocolVersion" (2026-07-28 or later)`)
	}
	if _, ok := p.Meta["io.modelcontextprotocol/clientCapabilities"]; !ok {
		missing = append(missing, `"io.modelcontextprotocol/clientCapabilities" (an object)`)
	}
	return strings.Join(missing, " and ")
}

// withRequestID records id in params._meta so the tools/call pipeline can
// audit it.
func withRequestID(params json.RawMessage, id jsonrpc.ID) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if len(params) == 0 || string(params) == "null" {
		obj = map[string]json.RawMessage{}
	} else if err := json.Unmarshal(params, &obj); err != nil || obj == nil {
		return nil, errors.New("params is not an object")
	}
	var meta map[string]json.RawMessage
	if raw, ok := obj["_meta"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, errors.New("_meta is not an object")
		}
	}
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	idText, err := json.Marshal(idString(id))
	if err != nil {
		return nil, err
	}
	meta[requestIDMeta] = idText
	if obj["_meta"], err = json.Marshal(meta); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

func idString(id jsonrpc.ID) string {
	switch v := id.Raw().(type) {
	case string:
		return v
	case int64:
		return fmt.Sprint(v)
	default:
		return fmt.Sprint(v)
	}
}

// topLevelID reads the id member of the object line holds without
// descending into the other members' values, however deep they nest (it
// only follows where each ends: members). It returns nil when line is
// not an object it can walk so, or its id is missing or not one an answer
// could carry back as sent (as peekID).
func topLevelID(line []byte) *jsonrpc.ID {
	mp := memberPool.Get().(*[]member)
	defer putMembers(mp)
	ms, _, ok := members(line, *mp)
	if !ok {
		return nil
	}
	var id *jsonrpc.ID
	for _, m := range ms {
		if !m.escaped && string(m.key) == "id" {
			id = peekID([]byte(`{"id":` + string(m.value) + `}`))
		}
	}
	return id
}

// peekID reads the id of a message that is JSON but not a valid request.
func peekID(line []byte) *jsonrpc.ID {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(line, &probe) != nil || len(probe.ID) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(probe.ID, &v) != nil {
		return nil
	}
	if f, ok := v.(float64); ok && f != float64(int64(f)) {
		return nil // not an integer id
	}
	id, err := jsonrpc.MakeID(v)
	if err != nil || !id.IsValid() {
		return nil
	}
	return &id
}

func (c *stdioConn) reject(id *jsonrpc.ID, code int64, message string) {
	c.log.Warn("rejected inbound message", "code", code, "reason", message)
	resp := struct {
		JSONRPC string         `json:"jsonrpc"`
		ID      any            `json:"id"`
		Error   *jsonrpc.Error `json:"error"`
	}{JSONRPC: "2.0", Error: &jsonrpc.Error{Code: code, Message: message}}
	if id != nil {
		resp.ID = id.Raw()
	}
	data, err := json.Marshal(resp)
	if err == nil {
		err = c.writeLine(data)
	}
	if err != nil {
		c.log.Error("writing error response", "err", err)
	}
}

// depth returns the maximum nesting of arrays and objects in a JSON text,
// without decoding it. It stops counting once past any useful limit.
func depth(b []byte) int {
	d, maxD, inStr, esc := 0, 0, false, false
	for _, ch := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case ch == '\\':
				esc = true
			case ch == '"':
				inStr = false
			}
			continue
		}
		switch ch {
		case '"':
			inStr = true
		case '[', '{':
			d++
			if d > maxD {
				maxD = d
			}
		case ']', '}':
			d--
		}
	}
	return maxD
}
