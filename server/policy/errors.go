package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is matched by every [Error].
var ErrInvalid = errors.New("invalid policy")

// Error is a problem in a policy file, located by file, line and key.
type Error struct {
	File string // the policy file, or "<embedded>"
	Line int    // 1-based; 0 when the problem has no single line
	Key  string // dotted key path, e.g. network.allowed_ranges[1]
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
}

// Is makes errors.Is(err, ErrInvalid) true for any *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Errors is every problem found in one policy file, in the order of the
// file. Loading goes on past the first, so one run of `policy check`
// shows them all; errors.As finds each [*Error] in it.
type Errors []*Error

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.Is and errors.As every problem.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, err := range e {
		out[i] = err
	}
	return out
}

// Is makes errors.Is(err, ErrInvalid) true for Errors.
func (e Errors) Is(target error) bool { return target == ErrInvalid }

// collect turns the problems noted while loading into one error: nil for
// none, the *Error itself for one, Errors for more. The first decoded are
// from decoding, the rest from validation; a validation problem next to
// or under a key that failed to decode (an endpoint whose ports were
// misspelt, a port that failed to decode and reads as 0) follows from
// that mistake and is dropped.
func collect(errs []error, decoded int, present map[string]int) error {
	var out Errors
	for i, err := range errs {
		var pe *Error
		if !errors.As(err, &pe) {
			pe = &Error{Msg: err.Error()}
		}
		if i >= decoded && slices.ContainsFunc(out[:min(decoded, len(out))], func(prev *Error) bool { return followsFrom(pe.Key, prev.Key, present) }) {
			continue
		}
		out = append(out, pe)
	}
	slices.SortStableFunc(out, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

// under reports whether key is parent or a key below it.
func under(key, parent string) bool {
	if parent == "" || !strings.HasPrefix(key, parent) {
		return false
	}
	rest := key[len(parent):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// followsFrom reports whether a validation problem at key may be a
// consequence of a decoding problem at bad: the same key, a key under it,
// or a field missing from the file next to it (ports missing because
// port was misspelt).
func followsFrom(key, bad string, present map[string]int) bool {
	if under(key, bad) {
		return true
	}
	_, written := present[key]
	return !written && under(bad, parentKey(key))
}

// parentKey is the key holding key: network.allowed_endpoints[0] for
// network.allowed_endpoints[0].ports, network.blocked_ports for
// network.blocked_ports[1].
func parentKey(key string) string {
	if i := strings.LastIndexAny(key, ".["); i > 0 {
		return key[:i]
	}
	return key
}
