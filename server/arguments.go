package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcp-secure/mcp-secure/server/jsonschema"
)

// errKeyCollision is wrapped by the error for arguments whose object keys
// repeat, exactly or up to case.
var errKeyCollision = errors.New("duplicate argument key")

// keyError says where two keys of one object collide. Its message quotes
// the caller's keys and pointer bounded, as a schema error does: it goes
// to the client and into the audit record's reasons.
type keyError struct {
	pointer     string // JSON pointer of the object, bounded
	first, then string
}

func (e *keyError) Error() string {
	if e.first == e.then {
		return fmt.Sprintf("key %s appears twice in the object at %q", jsonschema.QuoteName(e.first), displayPointer(e.pointer))
	}
	return fmt.Sprintf("keys %s and %s in the object at %q differ only in case", jsonschema.QuoteName(e.first), jsonschema.QuoteName(e.then), displayPointer(e.pointer))
}

func (e *keyError) Unwrap() error { return errKeyCollision }

// checkKeys refuses arguments in which one object holds the same key
// twice, or two keys that differ only in case. The policy sees keys
// exactly, while Go's encoding/json (and many other decoders) match struct
// fields case-insensitively and keep the last duplicate: such arguments
// could show the policy one value and hand the tool another.
func checkKeys(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 || emptyObject(raw) || keysPlain(raw) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return walkKeys(dec, nil)
}

// walkKeys checks the value dec reads next, at path (its pointer's
// tokens, unescaped). The pointer is built only for an error, bounded:
// building it on the way down would copy every key into every deeper
// pointer.
func walkKeys(dec *json.Decoder, path []string) error {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			f := foldKey(k)
			if prev, dup := seen[f]; dup {
				return &keyError{pointer: jsonschema.Pointer(path), first: prev, then: k}
			}
			seen[f] = k
			if err := walkKeys(dec, append(path, k)); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, append(path, strconv.Itoa(i))); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// foldKey maps every rune to the smallest rune of its case-folding orbit,
// so two keys are equal under strings.EqualFold exactly when their folded
// forms are equal ("K", "k" and the Kelvin sign all fold to "K").
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
		b.WriteRune(m)
	}
	return b.String()
}

// keysPlain reports that no object of raw, a JSON document, has two keys
// equal up to case, when it can tell without decoding: every key is
// ASCII without escapes (ASCII keys fold together only with ASCII keys,
// and are equal up to case exactly when strings.EqualFold says so), and
// no object has more than maxPlainKeys keys. False means it cannot tell,
// or found a collision: checkKeys then walks raw with a decoder, which
// knows every case and says where.
func keysPlain(raw []byte) bool {
	i, ok := plainValue(raw, 0, 0)
	return ok && len(bytes.TrimSpace(raw[i:])) == 0
}

const (
	maxPlainKeys  = 64
	maxPlainDepth = 64
)

// plainValue scans the value at raw[i:] and returns where it ends.
func plainValue(raw []byte, i, depth int) (int, bool) {
	i = skipWS(raw, i)
	if i >= len(raw) || depth > maxPlainDepth {
		return i, false
	}
	switch raw[i] {
	case '{':
		var keys [maxPlainKeys][]byte
		n := 0
		i = skipWS(raw, i+1)
		if i < len(raw) && raw[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(raw) || raw[i] != '"' || n == maxPlainKeys {
				return i, false
			}
			end := i + 1
			for end < len(raw) && raw[end] != '"' {
				if c := raw[end]; c == '\\' || c >= utf8.RuneSelf || c < 0x20 {
					return i, false
				}
				end++
			}
			if end >= len(raw) {
				return i, false
			}
			key := raw[i+1 : end]
			for _, k := range keys[:n] {
				if bytes.EqualFold(k, key) {
					return i, false
				}
			}
			keys[n] = key
			n++
			i = skipWS(raw, end+1)
			if i >= len(raw) || raw[i] != ':' {
				return i, false
			}
			var ok bool
			if i, ok = plainValue(raw, i+1, depth+1); !ok {
				return i, false
			}
			i = skipWS(raw, i)
			if i >= len(raw) {
				return i, false
			}
			if raw[i] == '}' {
				return i + 1, true
			}
			if raw[i] != ',' {
				return i, false
			}
			i = skipWS(raw, i+1)
		}
	case '[':
		i = skipWS(raw, i+1)
		if i < len(raw) && raw[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = plainValue(raw, i, depth+1); !ok {
				return i, false
			}
			i = skipWS(raw, i)
			if i >= len(raw) {
				return i, false
			}
			if raw[i] == ']' {
				return i + 1, true
			}
			if raw[i] != ',' {
				return i, false
			}
			i++
		}
	case '"':
		for j := i + 1; j < len(raw); j++ {
			switch raw[j] {
			case '\\':
				j++
			case '"':
				return j + 1, true
			}
		}
		return i, false
	}
	// A number, true, false or null: it ends where a delimiter starts.
	j := i
	for j < len(raw) && !strings.ContainsRune(",]} \t\r\n", rune(raw[j])) {
		if raw[j] == '{' || raw[j] == '[' || raw[j] == '"' || raw[j] == ':' {
			return j, false
		}
		j++
	}
	return j, j > i
}

// skipWS skips JSON whitespace from raw[i].
func skipWS(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n') {
		i++
	}
	return i
}
