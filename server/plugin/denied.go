package plugin

import (
	"errors"
	"fmt"
	"strings"
)

// ErrDenied is matched by every [DeniedError].
var ErrDenied = errors.New("denied by policy")

// DeniedError is a door's refusal: what was asked and why not. The doors
// of the Host return it (wrapped or not) when the policy refuses a
// connection, a path or a command; a handler passes it up, and the server
// turns it into a denial result. Its message is meant for the model and
// names what the policy blocked.
type DeniedError struct {
	Kind    string // audit kind: network, filesystem, command
	Target  string // e.g. "tcp 10.0.0.1:22 (example.com)"
	Reasons []string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s policy denied %s: %s", e.Kind, e.Target, strings.Join(e.Reasons, "; "))
}

// Is makes errors.Is(err, ErrDenied) true for any DeniedError.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }
