package engine

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// policyCache serves reads of data.mcp.policy from one AST value built
// with the snapshot, instead of a storage read and a conversion per
// evaluation. It is read-only, so every evaluation of the snapshot shares
// it; reads outside the policy document miss and go to the store.
type policyCache struct {
	root ast.Value // the value of data.mcp.policy
}

var _ topdown.BaseCache = (*policyCache)(nil)

// policyPrefix is data.mcp.policy, built without the parser (package
// variables are made before main runs, on every start) and of terms of
// its own, not OPA's shared interned ones.
var policyPrefix = ast.Ref{ast.VarTerm("data"), ast.StringTerm("mcp"), ast.StringTerm("policy")}

func (c *policyCache) Get(ref ast.Ref) ast.Value {
	if len(ref) < len(policyPrefix) || !ref[:len(policyPrefix)].Equal(policyPrefix) {
		return nil
	}
	v := c.root
	for _, t := range ref[len(policyPrefix):] {
		if !t.IsGround() {
			return nil
		}
		switch x := v.(type) {
		case ast.Object:
			next := x.Get(t)
			if next == nil {
				return nil
			}
			v = next.Value
		case *ast.Array:
			n, ok := t.Value.(ast.Number)
			if !ok {
				return nil
			}
			i, ok := n.Int()
			if !ok || i < 0 || i >= x.Len() {
				return nil
			}
			v = x.Elem(i).Value
		default:
			return nil
		}
	}
	return v
}

// Put drops values: the cache is shared and holds only the policy.
func (c *policyCache) Put(ast.Ref, ast.Value) {}
