package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// buildDryRun builds the engine of the policy's dry_run section: another
// policy file (with its own modules) or the enforced configuration cfg,
// plus the section's modules. nil when the section is absent. envRefs
// are the variables that other policy file takes with ${VAR}: though it
// is never enforced, they name credentials as the enforced policy's do,
// and are the server's own as much (checked.envRefs). The warning says,
// loudly, what is decided without being enforced.
func buildDryRun(ctx context.Context, pol *policy.Policy, cfg engine.Config) (eng *engine.Engine, envRefs []string, warning string, err error) {
	dr := pol.DryRun
	if !dr.Enabled() {
		return nil, nil, "", nil
	}
	what := "this policy"
	dcfg := cfg
	if dr.Policy != "" {
		dpol, err := policy.Load(dr.Policy)
		if err != nil {
			return nil, nil, "", fmt.Errorf("dry_run.policy: %w", err)
		}
		if dpol.DryRun.Enabled() {
			return nil, nil, "", pol.Errorf("dry_run.policy", "the dry-run policy %s has a dry_run section of its own; only the enforced policy may name one", dr.Policy)
		}
		if dcfg, err = engineConfig(dpol); err != nil {
			return nil, nil, "", fmt.Errorf("dry_run.policy: %w", err)
		}
		what = "policy " + dr.Policy
		envRefs = dpol.EnvRefs()
	}
	user := make(map[string]string, len(dcfg.UserModules)+len(dr.Modules))
	for k, v := range dcfg.UserModules {
		user[k] = v
	}
	for _, f := range dr.Modules {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, "", fmt.Errorf("dry_run.modules: %w", err)
		}
		user[f] = string(src)
	}
	dcfg.UserModules = user
	if len(dr.Modules) > 0 {
		what += fmt.Sprintf(" with %d dry-run modules %v", len(dr.Modules), dr.Modules)
	}
	if eng, err = engine.New(ctx, dcfg); err != nil {
		return nil, nil, "", fmt.Errorf("dry_run: %w", err)
	}
	warning = "DRY RUN: " + what + " decides every tool call, connection, path access and command next to the enforced policy and is NEVER enforced; " +
		"its would-be decisions are recorded in the audit log as dry_run {enforced: false}"
	return eng, envRefs, warning, nil
}

// dryRunner is the server's view of the dry-run engine; a reload swaps
// it, nil when the policy has no dry_run section.
type dryRunner struct{ eng atomic.Pointer[engine.Engine] }

var _ server.DryRunner = (*dryRunner)(nil)

// Active implements guard.DryRunner: a dry-run policy is configured.
func (d *dryRunner) Active() bool { return d.eng.Load() != nil }

func (d *dryRunner) DryRun(ctx context.Context, point engine.Point, input ast.Value) (engine.Decision, bool, error) {
	e := d.eng.Load()
	if e == nil {
		return engine.Decision{}, false, nil
	}
	dec, err := e.Decide(ctx, point, input)
	return dec, true, err
}
