package policy

import (
	"errors"
	"fmt"
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
