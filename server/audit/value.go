package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Truncated replaces a value over the size cap: its size and the SHA-256
// of its (redacted) JSON encoding, or of the string's bytes for a string.
type Truncated struct {
	Truncated bool   `json:"truncated"`
	Bytes     int    `json:"bytes"`
	SHA256    string `json:"sha256"`
}

// truncatedSize is about the encoded size of a Truncated.
const truncatedSize = 110

func truncate(data []byte) Truncated {
	sum := sha256.Sum256(data)
	return Truncated{Truncated: true, Bytes: len(data), SHA256: hex.EncodeToString(sum[:])}
}

// walker redacts a decoded JSON value and caps its parts in one pass.
type walker struct {
	r *Redactor
	// max caps every string, key, array and object (but not the value
	// walked itself, whose cap is the record's); 0 means no cap.
	max int
}

// str redacts and caps one string.
func (w *walker) str(s string) (any, int) {
	s = w.r.String(s)
	if w.max > 0 && len(s) > w.max {
		return truncate([]byte(s)), truncatedSize
	}
	return s, len(s) + 2
}

// key redacts and caps an object key; a key over the cap becomes a short
// description of itself.
func (w *walker) key(k string) string {
	k = w.r.String(k)
	if w.max > 0 && len(k) > w.max {
		t := truncate([]byte(k))
		return "[TRUNCATED:" + strconv.Itoa(t.Bytes) + " bytes, sha256 " + t.SHA256 + "]"
	}
	return k
}

// walk returns the redacted, capped copy of v and about the size of its
// encoding. capSelf says whether v itself, if an array or object, is
// subject to the cap.
func (w *walker) walk(v any, capSelf bool) (any, int) {
	switch x := v.(type) {
	case nil:
		return nil, 4
	case bool:
		return x, 5
	case float64, int, int64, float32, int32, uint, uint64, uint32:
		return x, 20
	case json.Number:
		return x, len(x)
	case string:
		return w.str(x)
	case Truncated:
		return x, truncatedSize
	case map[string]any:
		out := make(map[string]any, len(x))
		size := 2
		for k, val := range x {
			nk := w.key(k)
			if _, dup := out[nk]; dup {
				nk += "#" + strconv.Itoa(len(out))
			}
			var nv any
			n := 0
			if SensitiveKey(k) {
				nv = w.r.whole(val)
				n = markerLen + 2
			} else {
				nv, n = w.walk(val, true)
			}
			out[nk] = nv
			size += len(nk) + 4 + n
		}
		return w.capped(out, size, capSelf)
	case []any:
		out := make([]any, len(x))
		size := 2
		for i, val := range x {
			var n int
			out[i], n = w.walk(val, true)
			size += n + 1
		}
		return w.capped(out, size, capSelf)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = val
		}
		return w.walk(m, capSelf)
	case []string:
		a := make([]any, len(x))
		for i, val := range x {
			a[i] = val
		}
		return w.walk(a, capSelf)
	case json.RawMessage:
		return w.walk(decode(x), capSelf)
	default:
		data, err := json.Marshal(x)
		if err != nil {
			return w.r.marker(""), markerLen + 2
		}
		return w.walk(decode(data), capSelf)
	}
}

func (w *walker) capped(v any, size int, capSelf bool) (any, int) {
	if !capSelf || w.max <= 0 || size <= w.max {
		return v, size
	}
	data, err := json.Marshal(v)
	if err != nil {
		data = nil
	}
	return truncate(data), truncatedSize
}

func decode(data []byte) any {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return v
}
