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
	"sync"
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

// StdioTransport is newline-delimited JSON-RPC over a reader and a writer.
//
// Unlike a plain decoder loop, it never gives up on the stream because of
// one bad message: a line that is not JSON, not valid UTF-8, too long, too
// deeply nested, a batch or not a JSON-RPC message is answered with a
// JSON-RPC error (keeping the id when one can be read) and the next line is
// served.
type StdioTransport struct {
	In              io.Reader
	Out             io.Writer
	MaxMessageBytes int // 0 means DefaultMaxMessageBytes
	MaxDepth        int // 0 means DefaultMaxDepth
	Logger          *slog.Logger
}

var _ mcp.Transport = (*StdioTransport)(nil)

// Connect starts reading In.
func (t *StdioTransport) Connect(context.Context) (mcp.Connection, error) {
	c := &stdioConn{
		out:      t.Out,
		maxBytes: t.MaxMessageBytes,
		maxDepth: t.MaxDepth,
		log:      t.Logger,
		incoming: make(chan readResult),
		closed:   make(chan struct{}),
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
	go c.readLoop(bufio.NewReaderSize(t.In, 64<<10))
	return c, nil
}

type readResult struct {
	msg jsonrpc.Message
	err error
}

type stdioConn struct {
	out      io.Writer
	maxBytes int
	maxDepth int
	log      *slog.Logger

	wmu      sync.Mutex
	incoming chan readResult

	closeOnce sync.Once
	closed    chan struct{}
}

func (c *stdioConn) SessionID() string { return "" }

func (c *stdioConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-c.incoming:
		return r.msg, r.err
	case <-c.closed:
		return nil, io.EOF
	}
}

func (c *stdioConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	return c.writeLine(data)
}

func (c *stdioConn) writeLine(data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf := make([]byte, 0, len(data)+1)
	buf = append(append(buf, data...), '\n')
	if _, err := c.out.Write(buf); err != nil {
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
	case c.incoming <- r:
		return true
	case <-c.closed:
		return false
	}
}

func (c *stdioConn) readLoop(r *bufio.Reader) {
	for {
		line, tooLong, err := readLine(r, c.maxBytes)
		if tooLong {
			c.reject(nil, jsonrpc.CodeInvalidRequest, fmt.Sprintf("message exceeds %d bytes", c.maxBytes))
		} else if len(bytes.TrimSpace(line)) > 0 {
			if msg := c.decode(line); msg != nil && !c.deliver(readResult{msg: msg}) {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.log.Error("reading stdin", "err", err)
			}
			c.deliver(readResult{err: io.EOF})
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
		c.reject(nil, jsonrpc.CodeInvalidRequest, fmt.Sprintf("message nests deeper than %d levels", c.maxDepth))
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
	msg, err := jsonrpc.DecodeMessage(line)
	if err != nil {
		c.reject(peekID(line), jsonrpc.CodeInvalidRequest, "not a JSON-RPC 2.0 message: "+err.Error())
		return nil
	}
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == "tools/call" && req.ID.IsValid() {
		params, err := withRequestID(req.Params, req.ID)
		if err != nil {
			c.reject(&req.ID, jsonrpc.CodeInvalidParams, "tools/call params must be an object")
			return nil
		}
		req.Params = params
	}
	return msg
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
