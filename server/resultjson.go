package server

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A tools/call result, encoded by hand. The pipeline's results have one
// shape: text content, and structured content made of maps, lists,
// strings, numbers and booleans. Encoding them through encoding/json
// (the SDK's MarshalJSON, one reflection walk per content item and per
// value) cost more than deciding the call. appendCallResult writes the
// same bytes as json.Marshal without reflection for that shape; anything
// else, or any part it does not know, goes through encoding/json, so the
// output never differs.

// appendCallResult appends res as json.Marshal encodes it, and reports
// false (appending nothing) when res has a field only encoding/json
// knows how to write (_meta, non-text content, input requests, ...).
func appendCallResult(dst []byte, res *mcp.CallToolResult) ([]byte, bool) {
	if len(res.Meta) != 0 || len(res.InputRequests) != 0 || res.RequestState != "" || res.NeedsInput() {
		return dst, false
	}
	for _, c := range res.Content {
		tc, ok := c.(*mcp.TextContent)
		if !ok || tc == nil || len(tc.Meta) != 0 || tc.Annotations != nil {
			return dst, false
		}
	}
	start := len(dst)
	dst = append(dst, `{"content":[`...)
	for i, c := range res.Content {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"text","text":`...)
		dst = appendJSONString(dst, c.(*mcp.TextContent).Text)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if res.StructuredContent != nil {
		dst = append(dst, `,"structuredContent":`...)
		var ok bool
		if dst, ok = appendJSONValue(dst, res.StructuredContent); !ok {
			return dst[:start], false
		}
	}
	if res.IsError {
		dst = append(dst, `,"isError":true`...)
	}
	return append(dst, '}'), true
}

// appendJSONValue appends v as json.Marshal encodes it: the common kinds
// by hand, anything else through json.Marshal. It reports false when v
// does not encode.
func appendJSONValue(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return appendJSONString(dst, v), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case int:
		return strconv.AppendInt(dst, int64(v), 10), true
	case int64:
		return strconv.AppendInt(dst, v, 10), true
	case []string:
		if v == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, s := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, s)
		}
		return append(dst, ']'), true
	case []any:
		if v == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendJSONValue(dst, e); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), true
		}
		var buf [16]string
		keys := buf[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			var ok bool
			if dst, ok = appendJSONValue(dst, v[k]); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	case json.RawMessage:
		// Kept as is when encoding/json would keep it: valid, compact,
		// nothing it escapes (a plugin's answer encoded once, say).
		if asEncoded(v) {
			return append(dst, v...), true
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return dst, false
	}
	return append(dst, data...), true
}

// asEncoded reports whether encoding/json writes raw unchanged: it is
// valid JSON with no whitespace outside strings, and holds none of the
// characters encoding/json escapes in a raw message (<, >, &, U+2028,
// U+2029).
func asEncoded(raw []byte) bool {
	if p := lastEncoded.Load(); p != nil && bytes.Equal(*p, raw) {
		return true
	}
	if len(raw) == 0 || bytes.ContainsAny(raw, "<>&\u2028\u2029") || !json.Valid(raw) {
		return false
	}
	in := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	if len(raw) <= 64<<10 {
		kept := bytes.Clone(raw)
		lastEncoded.Store(&kept)
	}
	return true
}

// lastEncoded is a copy of the last raw message asEncoded accepted: the
// same answer given again (a kept one) is compared, not scanned again.
var lastEncoded atomic.Pointer[[]byte]

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes it (HTML
// characters escaped, invalid UTF-8 replaced, U+2028 and U+2029
// escaped).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
