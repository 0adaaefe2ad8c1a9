package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// The transport's hot path: what every message pays for. Each fast form
// here handles the common shape of a message and says when it cannot, and
// the general code (jsonrpc.DecodeMessage, withRequestID,
// jsonrpc.EncodeMessage) handles the rest, so both give the same result.
// The SDK's decoder allocates a 32 KiB buffer per message and
// withRequestID decodes and re-encodes the params; the fast forms read a
// line once and splice the request id into it.

// member is one member of a JSON object: its key as written between the
// quotes, whether the key has escapes, and its raw value.
type member struct {
	key     []byte
	escaped bool
	value   []byte
	start   int // offset of value in the object's text
}

// maxMembers bounds the members the fast forms look at; an object with
// more takes the general path.
const maxMembers = 16

// members splits a JSON object into its members, in order, into dst. The
// text must be valid JSON (json.Valid). It reports false for anything but
// an object, or one with more than maxMembers members. end is the index
// of the object's closing brace.
func members(b []byte, dst []member) (ms []member, end int, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, 0, false
	}
	ms = dst[:0]
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return ms, i, true
	}
	for i < len(b) {
		if b[i] != '"' || len(ms) == maxMembers {
			return nil, 0, false
		}
		kend, esc := stringEnd(b, i)
		if kend < 0 {
			return nil, 0, false
		}
		key := b[i+1 : kend-1]
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return nil, 0, false
		}
		i = skipSpace(b, i+1)
		vend := valueEnd(b, i)
		if vend <= i {
			return nil, 0, false
		}
		ms = append(ms, member{key: key, escaped: esc, value: b[i:vend], start: i})
		i = skipSpace(b, vend)
		if i >= len(b) {
			return nil, 0, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return ms, i, true
		default:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] (a
// quote), or -1 if it does not end, and whether it holds an escape.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc
		}
	}
	return -1, esc
}

// valueEnd returns the index just past the value starting at b[i], or -1
// if it does not end.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		d := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				d++
			case '}', ']':
				d--
				if d == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// memberPool recycles the members of one message.
var memberPool = sync.Pool{New: func() any { s := make([]member, 0, maxMembers); return &s }}

// putMembers returns members to the pool, keeping no reference to the
// message they came from.
func putMembers(mp *[]member) {
	ms := (*mp)[:maxMembers]
	clear(ms)
	*mp = ms[:0]
	memberPool.Put(mp)
}

// decodeRequest reads the common shape of a request: an object with
// "jsonrpc":"2.0", a "method" string and an "id" that is a string or an
// integer of at most 15 digits (or absent: a notification), keys and
// strings without escapes, no key twice, "params" an object or an array
// (or absent). line must be valid JSON and valid UTF-8, as the transport
// checks before it decodes (encoding/json accepts invalid UTF-8 in
// strings and replaces it; this keeps the bytes). For anything else it reports
// false, and jsonrpc.DecodeMessage decides.
func decodeRequest(line []byte) (*jsonrpc.Request, bool) {
	mp := memberPool.Get().(*[]member)
	defer putMembers(mp)
	ms, _, ok := members(line, *mp)
	if !ok {
		return nil, false
	}
	var version, method, id, params []byte
	for _, m := range ms {
		if m.escaped {
			return nil, false
		}
		var slot *[]byte
		switch string(m.key) {
		case "jsonrpc":
			slot = &version
		case "method":
			slot = &method
		case "id":
			slot = &id
		case "params":
			slot = &params
		case "result", "error":
			return nil, false // a response
		default:
			continue
		}
		if *slot != nil {
			return nil, false // the general decoder keeps the last
		}
		*slot = m.value
	}
	if string(version) != `"2.0"` || len(method) < 2 || method[0] != '"' || bytes.IndexByte(method, '\\') >= 0 {
		return nil, false
	}
	req := &jsonrpc.Request{Method: string(method[1 : len(method)-1])}
	switch {
	case id == nil || string(id) == "null":
	case id[0] == '"':
		if bytes.IndexByte(id, '\\') >= 0 {
			return nil, false
		}
		req.ID, _ = jsonrpc.MakeID(string(id[1 : len(id)-1]))
	default:
		n, ok := smallInt(id)
		if !ok {
			return nil, false
		}
		req.ID, _ = jsonrpc.MakeID(float64(n))
	}
	if params != nil {
		if params[0] != '{' && params[0] != '[' {
			return nil, false
		}
		req.Params = bytes.Clone(params)
	}
	return req, true
}

// decodeMessage is jsonrpc.DecodeMessage, through decodeRequest when it
// can.
func decodeMessage(line []byte) (jsonrpc.Message, error) {
	if req, ok := decodeRequest(line); ok {
		return req, nil
	}
	if err := faithfulID(line); err != nil {
		return nil, err
	}
	return jsonrpc.DecodeMessage(line)
}

// errUnfaithfulID is an id the answer could not carry back as sent.
var errUnfaithfulID = errors.New("request id refused")

// maxExactID is the largest integer id read exactly: the SDK reads
// numbers as float64.
const maxExactID = 1 << 53

// faithfulID refuses an id the answer could not carry back as sent: a
// number that is not an integer or lies beyond ±2^53 (read as a float,
// 1.5 would come back as 1, and 1e20 and 2e20 as one id), or a string
// with an escaped lone surrogate (it would come back as U+FFFD). The
// fast decoder takes none of these; the SDK's decoder would.
func faithfulID(line []byte) error {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(line, &probe) != nil {
		return nil // not an object: the SDK's decoder says what is wrong
	}
	raw := bytes.TrimSpace(probe.ID)
	switch {
	case len(raw) == 0 || raw[0] == 'n' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f':
		return nil
	case raw[0] == '"':
		if loneSurrogate(raw) {
			return fmt.Errorf("%w: it escapes a lone UTF-16 surrogate, which the answer could not carry back", errUnfaithfulID)
		}
		return nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > maxExactID || n < -maxExactID {
		return fmt.Errorf("%w: %s is not an integer within ±2^53, which the answer could not carry back exactly", errUnfaithfulID, raw)
	}
	return nil
}

// loneSurrogate reports whether the JSON string s escapes a UTF-16
// surrogate that is not half of a pair.
func loneSurrogate(s []byte) bool {
	for i := 0; i+5 < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if s[i+1] != 'u' {
			i++ // an escaped character, the backslash among them
			continue
		}
		r, err := strconv.ParseUint(string(s[i+2:i+6]), 16, 16)
		if err != nil {
			return false // not valid JSON: the decoder says so
		}
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return true // a low half with no high half before it
		case r >= 0xd800 && r <= 0xdbff:
			if i+11 >= len(s) || s[i+6] != '\\' || s[i+7] != 'u' {
				return true
			}
			lo, err := strconv.ParseUint(string(s[i+8:i+12]), 16, 16)
			if err != nil || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

// smallInt parses an integer of at most 15 digits (exact as a float64,
// which is how the SDK reads ids).
func smallInt(b []byte) (int64, bool) {
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 15 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// spliceRequestID is withRequestID without decoding: it adds the request
// id to params._meta by splicing bytes. It reports false when params has
// a shape it does not handle (escaped keys, a key twice, _meta not an
// object, the request-id key already present), and withRequestID decides.
func spliceRequestID(params json.RawMessage, id jsonrpc.ID) (json.RawMessage, bool) {
	idText, ok := jsonString(idString(id))
	if !ok {
		return nil, false
	}
	entry := make([]byte, 0, len(requestIDMeta)+len(idText)+4)
	entry = append(append(append(append(entry, '"'), requestIDMeta...), `":`...), idText...)
	if len(params) == 0 {
		return spliceInto([]byte(`{}`), 1, `"_meta":{`, entry, `}`), true
	}
	mp := memberPool.Get().(*[]member)
	defer putMembers(mp)
	ms, _, ok := members(params, *mp)
	if !ok {
		return nil, false
	}
	meta := -1
	for i, m := range ms {
		if m.escaped {
			return nil, false
		}
		for _, o := range ms[:i] {
			if bytes.Equal(o.key, m.key) {
				return nil, false
			}
		}
		if string(m.key) == "_meta" {
			meta = i
		}
	}
	open := bytes.IndexByte(params, '{') + 1
	if meta < 0 {
		sep := ","
		if len(ms) == 0 {
			sep = ""
		}
		return spliceInto(params, open, `"_meta":{`, entry, `}`+sep), true
	}
	var buf [maxMembers]member
	inner, end, ok := members(ms[meta].value, buf[:0])
	if !ok {
		return nil, false
	}
	for _, m := range inner {
		if m.escaped || string(m.key) == requestIDMeta {
			return nil, false
		}
	}
	// The entry goes last in _meta, before its closing brace.
	sep := ","
	if len(inner) == 0 {
		sep = ""
	}
	return spliceInto(params, ms[meta].start+end, sep, entry, ""), true
}

// spliceInto returns src with before, entry and after inserted at i.
func spliceInto(src []byte, i int, before string, entry []byte, after string) []byte {
	dst := make([]byte, 0, len(src)+len(before)+len(entry)+len(after))
	dst = append(dst, src[:i]...)
	dst = append(dst, before...)
	dst = append(dst, entry...)
	dst = append(dst, after...)
	return append(dst, src[i:]...)
}

// jsonString quotes s as a JSON string when it needs no escapes.
func jsonString(s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			return nil, false
		}
	}
	b := make([]byte, 0, len(s)+2)
	return append(append(append(b, '"'), s...), '"'), true
}

// responseFits reports whether appendResponse can write resp: a
// successful answer with an integer id or one that needs no escapes, and
// a result on one line. Anything else goes through
// jsonrpc.EncodeMessage.
func responseFits(resp *jsonrpc.Response) bool {
	if resp.Error != nil || len(resp.Result) == 0 || bytes.IndexByte(resp.Result, '\n') >= 0 {
		return false
	}
	switch v := resp.ID.Raw().(type) {
	case int64:
		return true
	case string:
		_, ok := jsonString(v)
		return ok
	}
	return false
}

// appendResponse appends the wire form of an answer responseFits
// accepts, byte for byte as jsonrpc.EncodeMessage writes it (the SDK
// marshals results compactly): {"jsonrpc":"2.0","id":…,"result":…}.
func appendResponse(dst []byte, resp *jsonrpc.Response) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	switch v := resp.ID.Raw().(type) {
	case int64:
		dst = strconv.AppendInt(dst, v, 10)
	case string:
		dst = append(append(append(dst, '"'), v...), '"')
	}
	dst = append(dst, `,"result":`...)
	dst = append(dst, resp.Result...)
	return append(dst, '}')
}

// fastIDKey is idKey without fmt for the ids the SDK makes.
func fastIDKey(id jsonrpc.ID) (string, bool) {
	switch v := id.Raw().(type) {
	case string:
		return "s:" + v, true
	case int64:
		return "n:" + strconv.FormatInt(v, 10), true
	}
	return "", false
}
