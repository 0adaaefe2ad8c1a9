package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// encoder redacts, caps and encodes a record in one pass, appending JSON
// to buf. A container whose encoding grows past the cap is cut back and
// replaced by a Truncated over the bytes it had written, so nothing is
// encoded twice.
type encoder struct {
	r   *Redactor
	max int // 0: no cap
	buf []byte
	// omitDuration leaves duration_ns out.
	omitDuration bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (e *encoder) raw(s string) { e.buf = append(e.buf, s...) }

// field appends ,"name": (or {"name": for the first field).
func (e *encoder) field(name string) {
	if e.buf[len(e.buf)-1] != '{' {
		e.buf = append(e.buf, ',')
	}
	e.buf = append(e.buf, '"')
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, '"', ':')
}

// quote appends s as a JSON string: invalid UTF-8 becomes U+FFFD, control
// characters and U+2028/U+2029 are escaped, as encoding/json does.
func (e *encoder) quote(s string) {
	const hexDigits = "0123456789abcdef"
	b := append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				for i < len(s) && plainASCII[s[i]] {
					i++
				}
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	e.buf = append(b, '"')
}

// plainASCII marks the bytes a JSON string holds as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// truncated appends a Truncated for data.
func (e *encoder) truncated(data []byte) {
	sum := sha256.Sum256(data)
	n := len(data)
	e.buf = append(e.buf, `{"truncated":true,"bytes":`...)
	e.buf = strconv.AppendInt(e.buf, int64(n), 10)
	e.buf = append(e.buf, `,"sha256":"`...)
	e.buf = hex.AppendEncode(e.buf, sum[:])
	e.buf = append(e.buf, '"', '}')
}

// str appends a client string: redacted, and truncated past the cap.
func (e *encoder) str(s string) {
	s = e.r.String(s)
	if e.max > 0 && len(s) > e.max {
		e.truncated([]byte(s))
		return
	}
	e.quote(s)
}

// key appends an object key: redacted, and described past the cap.
func (e *encoder) key(k string) {
	k = e.r.String(k)
	if e.max > 0 && len(k) > e.max {
		sum := sha256.Sum256([]byte(k))
		k = "[TRUNCATED:" + strconv.Itoa(len(k)) + " bytes, sha256 " + hex.EncodeToString(sum[:]) + "]"
	}
	e.quote(k)
}

// capFrom replaces what was appended since start with a Truncated when it
// is over the cap.
func (e *encoder) capFrom(start int, capSelf bool) {
	if !capSelf || e.max <= 0 || len(e.buf)-start <= e.max {
		return
	}
	sum := sha256.Sum256(e.buf[start:])
	n := len(e.buf) - start
	e.buf = e.buf[:start]
	e.buf = append(e.buf, `{"truncated":true,"bytes":`...)
	e.buf = strconv.AppendInt(e.buf, int64(n), 10)
	e.buf = append(e.buf, `,"sha256":"`...)
	e.buf = hex.AppendEncode(e.buf, sum[:])
	e.buf = append(e.buf, '"', '}')
}

// value appends v, a decoded JSON value or anything encoding/json takes.
func (e *encoder) value(v any, capSelf bool) {
	switch x := v.(type) {
	case nil:
		e.raw("null")
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case string:
		e.str(x)
	case float64:
		e.float(x)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err == nil {
			e.raw(string(x))
		} else {
			e.str(string(x))
		}
	case Truncated:
		e.buf = append(e.buf, `{"truncated":true,"bytes":`...)
		e.buf = strconv.AppendInt(e.buf, int64(x.Bytes), 10)
		e.buf = append(e.buf, `,"sha256":`...)
		e.quote(x.SHA256)
		e.buf = append(e.buf, '}')
	case map[string]any:
		start := len(e.buf)
		var small [16]string
		keys := small[:0]
		if len(x) > len(small) {
			keys = make([]string, 0, len(x))
		}
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.key(k)
			e.buf = append(e.buf, ':')
			if SensitiveKey(k) {
				e.whole(x[k])
			} else {
				e.value(x[k], true)
			}
		}
		e.buf = append(e.buf, '}')
		e.capFrom(start, capSelf)
	case []any:
		start := len(e.buf)
		e.buf = append(e.buf, '[')
		for i, val := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.value(val, true)
		}
		e.buf = append(e.buf, ']')
		e.capFrom(start, capSelf)
	case []string:
		start := len(e.buf)
		e.buf = append(e.buf, '[')
		for i, val := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.str(val)
		}
		e.buf = append(e.buf, ']')
		e.capFrom(start, capSelf)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = val
		}
		e.value(m, capSelf)
	case json.RawMessage:
		e.value(decode(x), capSelf)
	default:
		data, err := json.Marshal(x)
		if err != nil {
			e.quote(e.r.marker(""))
			return
		}
		e.value(decode(data), capSelf)
	}
}

// whole appends the marker for a value under a sensitive key.
func (e *encoder) whole(v any) {
	switch x := e.r.whole(v).(type) {
	case string:
		e.quote(x)
	default:
		e.raw("null")
	}
}

// float appends f as encoding/json would.
func (e *encoder) float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		e.raw("null")
		return
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(e.buf, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	e.buf = b
}

// record encodes r: the fields a client chose redacted and capped, the
// input capped only by the record cap.
func (e *encoder) record(r *Record) {
	e.buf = append(e.buf, '{')
	e.field("timestamp")
	e.buf = append(e.buf, '"')
	e.buf = r.Timestamp.UTC().AppendFormat(e.buf, time.RFC3339Nano)
	e.buf = append(e.buf, '"')
	e.field("decision_id")
	e.quote(r.DecisionID)
	if r.ParentDecisionID != "" {
		e.field("parent_decision_id")
		e.quote(r.ParentDecisionID)
	}
	if r.SessionID != "" {
		e.field("session_id")
		e.str(r.SessionID)
	}
	if r.RequestID != "" {
		e.field("request_id")
		e.str(r.RequestID)
	}
	if r.Path != "" {
		e.field("path")
		e.quote(r.Path)
	}
	e.field("kind")
	e.quote(r.Kind)
	if r.Tool != "" {
		e.field("tool")
		e.str(r.Tool)
	}
	if r.Client != nil {
		e.field("client")
		e.buf = append(e.buf, '{')
		e.field("name")
		e.str(r.Client.Name)
		e.field("version")
		e.str(r.Client.Version)
		e.buf = append(e.buf, '}')
	}
	if r.Result != "" {
		e.field("result")
		e.quote(r.Result)
	}
	if r.Status != "" {
		e.field("status")
		e.quote(r.Status)
	}
	if len(r.Reasons) > 0 {
		e.field("reasons")
		e.value(r.Reasons, true)
	}
	if r.Error != "" {
		e.field("error")
		e.str(r.Error)
	}
	if r.Input != nil {
		e.field("input")
		e.value(r.Input, false)
	}
	if !e.omitDuration {
		e.field("duration_ns")
		e.buf = strconv.AppendInt(e.buf, r.DurationNS, 10)
	}
	if r.Count != 0 {
		e.field("count")
		e.buf = strconv.AppendInt(e.buf, r.Count, 10)
	}
	if r.WindowNS != 0 {
		e.field("window_ns")
		e.buf = strconv.AppendInt(e.buf, r.WindowNS, 10)
	}
	if r.TraceID != "" {
		e.field("trace_id")
		e.quote(r.TraceID)
		e.field("span_id")
		e.quote(r.SpanID)
		if r.TraceOrigin != "" {
			e.field("trace_origin")
			e.quote(r.TraceOrigin)
		}
	}
	if r.DryRun != nil {
		e.field("dry_run")
		e.dryRun(r.DryRun)
	}
	if r.Policy != nil {
		e.field("policy")
		e.policyChange(r.Policy)
	}
	if len(r.Labels) > 0 {
		e.field("labels")
		keys := make([]string, 0, len(r.Labels))
		for k := range r.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.quote(k)
			e.buf = append(e.buf, ':')
			e.quote(r.Labels[k])
		}
		e.buf = append(e.buf, '}')
	}
	e.buf = append(e.buf, '}')
}
