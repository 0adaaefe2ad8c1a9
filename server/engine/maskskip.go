package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Most audit records match no mask rule, and evaluating the rules costs
// more than encoding the record. When the only mask rules in force are the
// built-in ones (rego/mcp/audit/audit.rego, byte for byte the version
// below), a record can be proven to match none of them without evaluating
// them: each built-in rule needs input.input to hold "stdin" or "env", or
// input.input.arguments to hold "content". Records without those keys skip
// the evaluation; any other record, and every record under a policy with
// mask rules of its own, is evaluated as before.

// builtinAuditSHA256 is the SHA-256 of the built-in audit module that
// maskMayMatch was written against. A changed module turns the shortcut
// off (every record is evaluated) until maskMayMatch is reviewed against
// it and this hash updated; TestMaskShortcutCoversBuiltin says so.
const builtinAuditSHA256 = "2802c928bee37c317495af0d2f5d86ae0b070ae46a54518ad9ea700a84f08d9e"

// builtinAuditModule is the built-in module's name in Config.Modules.
const builtinAuditModule = "rego/mcp/audit/audit.rego"

// onlyBuiltinMasks reports whether the built-in audit module, unchanged,
// is the only module of package mcp.audit (or below it) in parsed.
func onlyBuiltinMasks(cfg Config, parsed map[string]*ast.Module) bool {
	src, ok := cfg.Modules[builtinAuditModule]
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(src))
	if hex.EncodeToString(sum[:]) != builtinAuditSHA256 {
		return false
	}
	audit := ast.MustParseRef("data.mcp.audit")
	for name, m := range parsed {
		if name == builtinAuditModule {
			continue
		}
		if m.Package.Path.HasPrefix(audit) || audit.HasPrefix(m.Package.Path) {
			// A module in mcp.audit or below it, or one whose package
			// contains it (package mcp could define audit.mask).
			return false
		}
	}
	return true
}

// maskMayMatch reports whether a built-in mask rule could match record:
// false only when none can. A value of a type it does not know counts as
// a possible match.
func maskMayMatch(record map[string]any) bool {
	return inputMayMatch(record["input"])
}

// inputMayMatch is maskMayMatch of a record whose input is in.
func inputMayMatch(in any) bool {
	if in == nil {
		return false
	}
	m, ok := in.(map[string]any)
	if !ok {
		return true
	}
	if _, ok := m["stdin"]; ok {
		return true
	}
	if _, ok := m["env"]; ok {
		return true
	}
	args, ok := m["arguments"]
	if !ok || args == nil {
		return false
	}
	a, ok := args.(map[string]any)
	if !ok {
		return true
	}
	_, ok = a["content"]
	return ok
}

// MaskSkips reports whether no mask rule in force can match a record
// whose input is in (see maskMayMatch), so the record need not even be
// built for the rules: Mask would return no masks.
func (e *Engine) MaskSkips(ctx context.Context, in any) bool {
	s := e.current(ctx)
	return s != nil && s.c.builtinMasks && !inputMayMatch(in) && ctx.Err() == nil
}
