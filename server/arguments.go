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
)

// errKeyCollision is wrapped by the error for arguments whose object keys
// repeat, exactly or up to case.
var errKeyCollision = errors.New("duplicate argument key")

// keyError says where two keys of one object collide.
type keyError struct {
	pointer     string // JSON pointer of the object
	first, then string
}

func (e *keyError) Error() string {
	if e.first == e.then {
		return fmt.Sprintf("key %q appears twice in the object at %q", e.first, displayPointer(e.pointer))
	}
	return fmt.Sprintf("keys %q and %q in the object at %q differ only in case", e.first, e.then, displayPointer(e.pointer))
}

func (e *keyError) Unwrap() error { return errKeyCollision }

// checkKeys refuses arguments in which one object holds the same key
// twice, or two keys that differ only in case. The policy sees keys
// exactly, while Go's encoding/json (and many other decoders) match struct
// fields case-insensitively and keep the last duplicate: such arguments
// could show the policy one value and hand the tool another.
func checkKeys(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 || emptyObject(raw) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return walkKeys(dec, "")
}

func walkKeys(dec *json.Decoder, ptr string) error {
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
				return &keyError{pointer: ptr, first: prev, then: k}
			}
			seen[f] = k
			if err := walkKeys(dec, ptr+"/"+escapePointer(k)); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, ptr+"/"+strconv.Itoa(i)); err != nil {
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
