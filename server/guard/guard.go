package guard

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Decider answers policy decisions; *engine.Engine implements it.
type Decider interface {
	Decide(ctx context.Context, point engine.Point, input ast.Value) (engine.Decision, error)
}

// revisionOf names the policy d decides with under ctx (its bundle
// revision), when d tells (*engine.Engine does): the revision of a
// record that no decision named, a refusal before the policy was asked.
func revisionOf(ctx context.Context, d Decider) *string {
	if r, ok := d.(interface{ RevisionFor(context.Context) *string }); ok {
		return r.RevisionFor(ctx)
	}
	return nil
}

// DryRunner decides under the dry-run policy, when one is configured:
// its would-be decision goes into the record of the enforced one and
// never changes the outcome. Active says whether one is configured now
// (a reload may add or drop it), so a guard without one builds no input
// for it; ok is false when none is configured.
type DryRunner interface {
	Active() bool
	DryRun(ctx context.Context, point engine.Point, input ast.Value) (d engine.Decision, ok bool, err error)
}

// dryRun is the dry-run policy's would-be decision on input, for the
// record of the enforced decision; nil without a dry-run policy.
func dryRun(ctx context.Context, dr DryRunner, point engine.Point, input ast.Value) *audit.DryRun {
	if dr == nil || !dr.Active() {
		return nil
	}
	d, ok, err := dr.DryRun(ctx, point, input)
	if !ok {
		return nil
	}
	if err != nil {
		return &audit.DryRun{Reasons: d.Reasons, Error: "dry-run policy evaluation failed"}
	}
	return &audit.DryRun{Allow: d.Allow, Reasons: d.Reasons}
}

// Auditor records decisions; *audit.Logger implements it.
type Auditor interface {
	Log(ctx context.Context, r audit.Record) error
}

// ErrDenied is matched by every [DeniedError].
var ErrDenied = plugin.ErrDenied

// DeniedError is a guard's refusal: the contract type plugins see, in
// server/plugin.
type DeniedError = plugin.DeniedError

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
