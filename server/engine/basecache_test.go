package engine

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// policyPrefix is built by hand (no parser at start-up): it must be the
// reference the parser makes of data.mcp.policy.
func TestPolicyPrefix(t *testing.T) {
	if want := ast.MustParseRef("data.mcp.policy"); !policyPrefix.Equal(want) {
		t.Errorf("policyPrefix = %v, want %v", policyPrefix, want)
	}
}
