package guard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// Decider answers policy decisions; *engine.Engine implements it.
type Decider interface {
	Decide(ctx context.Context, point engine.Point, input ast.Value) (engine.Decision, error)
}

// Auditor records decisions; *audit.Logger implements it.
type Auditor interface {
	Log(ctx context.Context, r audit.Record) error
}

// ErrDenied is matched by every [DeniedError].
var ErrDenied = errors.New("denied by policy")

// DeniedError is a guard's refusal: what was asked and why not. Its
// message is meant for the model and names what the policy blocked.
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

// Call identifies the tool call a guard acts for.
type Call struct {
	Tool       string
	RequestID  string
	DecisionID string // the tool call's decision, parent of the guard's
	SessionID  string
}

type callKey struct{}

// WithCall returns ctx carrying the tool call on whose behalf guards act.
func WithCall(ctx context.Context, c Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// CallFrom returns the tool call carried by ctx, if any.
func CallFrom(ctx context.Context) Call {
	c, _ := ctx.Value(callKey{}).(Call)
	return c
}
