package engine

import (
	"context"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decisions of a snapshot are memoised when they cannot differ. The
// rules a decision point may evaluate (its package's, and every rule or
// function they depend on) are looked at once, when the snapshot is
// built. When they read input only through members named by constants
// (input.tool, input.tool_definition.changed, never input[x] or input as
// a whole), use no `with`, and call no built-in that can answer
// differently for the same arguments (time.now_ns, rand.intn, http.send:
// OPA marks them nondeterministic), a decision is a function of the
// values of those top-level members and the snapshot: the same values
// get the same decision. Such a point keeps its decisions, keyed by
// those values, for the snapshot's life (a reload builds a new snapshot
// with an empty memo). Only decisions evaluated without error are kept:
// an error or a timeout is decided again next time.

// memoLimit bounds the decisions a memo keeps; past it, it starts afresh.
// memoKeyBytes bounds the size of the values one decision is kept under
// (about; larger ones, long arguments say, are evaluated every time), so
// a memo holds a few MiB at most.
const (
	memoLimit    = 4096
	memoKeyBytes = 1024
)

// decisionMemo keeps the decisions of one point of one snapshot.
type decisionMemo struct {
	keys []*ast.Term // the top-level members of input the point's rules read
	mu   sync.Mutex
	m    map[int][]memoEntry
	n    int
}

type memoEntry struct {
	vals    []*ast.Term // of keys, nil where input has no such member
	refusal bool        // a Refusal's decision, not Decide's
	d       Decision
}

// newMemo plans the memo of the rules under prefix; nil when their
// decisions cannot be memoised. stable reports whether they are a
// function of input and the snapshot at all (no `with`, no built-in that
// can answer differently for the same arguments), however they read
// input: a caller that keeps decisions under the whole input (the
// network guard, the pipeline's list filter) may keep them only then.
func newMemo(comp *ast.Compiler, prefix ast.Ref) (m *decisionMemo, stable bool) {
	keys := map[string]bool{}
	ok, stable := true, true
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		if !stable {
			return true
		}
		switch x := x.(type) {
		case *ast.With:
			ok, stable = false, false
		case *ast.Expr:
			if x.IsCall() && !deterministicCall(x.Operator()) {
				ok, stable = false, false
			}
		case ast.Call:
			if op, isRef := x[0].Value.(ast.Ref); !isRef || !deterministicCall(op) {
				ok, stable = false, false
			}
		case ast.Var:
			if x.Equal(ast.InputRootDocument.Value) {
				ok = false // input as a whole
			}
		case ast.Ref:
			if len(x) == 0 || !x[0].Equal(ast.InputRootDocument) {
				return false
			}
			if len(x) < 2 {
				ok = false // input as a whole
				return true
			}
			key, isString := x[1].Value.(ast.String)
			if !isString {
				ok = false // a member chosen by a variable
				for _, t := range x[1:] {
					vis.Walk(t) // still looked at for stable
				}
				return true
			}
			keys[string(key)] = true
			for _, t := range x[2:] {
				vis.Walk(t)
			}
			return true
		}
		return false
	})
	for _, r := range reachable(comp, prefix) {
		if r == nil {
			return nil, false
		}
		vis.Walk(r)
		if !stable {
			return nil, false
		}
	}
	if !ok {
		return nil, true
	}
	m = &decisionMemo{}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		m.keys = append(m.keys, ast.StringTerm(k))
	}
	return m, true
}

// deterministicCall reports whether a call of op answers the same for
// the same arguments: a function of the policy (its own rules are looked
// at too), or a built-in OPA does not mark nondeterministic and that
// does not read the clock.
func deterministicCall(op ast.Ref) bool {
	if op.HasPrefix(ast.DefaultRootRef) {
		return true // a function rule: in the dependency graph
	}
	name := op.String()
	b, ok := ast.BuiltinMap[name]
	return ok && !b.Nondeterministic && !slices.Contains(clockBuiltins, name)
}

// clockBuiltins read the clock though OPA does not mark them
// nondeterministic: a certificate chain is verified at the current time
// (unless the options name one), so the same chain is valid at one
// decision and expired at the next.
var clockBuiltins = []string{
	"crypto.x509.parse_and_verify_certificates",
	"crypto.x509.parse_and_verify_certificates_with_options",
}

// reachable is every rule under prefix and every rule or function they
// depend on, by the compiler's dependency graph; a nil element means a
// dependency it cannot look into. The graph has each else branch as a
// node of its own, with no edge from the rule it belongs to (a rule that
// refers to another depends on its else branches, but the rules under
// prefix may be referred to by no rule, only by the decision's query), so
// the else branches of every rule are followed here.
func reachable(comp *ast.Compiler, prefix ast.Ref) []*ast.Rule {
	var queue []*ast.Rule
	seen := map[*ast.Rule]bool{}
	add := func(r *ast.Rule) {
		for ; r != nil; r = r.Else {
			if !seen[r] {
				seen[r] = true
				queue = append(queue, r)
			}
		}
	}
	for _, r := range comp.GetRulesWithPrefix(prefix) {
		add(r)
	}
	var out []*ast.Rule
	for len(queue) > 0 {
		r := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		out = append(out, r)
		for dep := range comp.Graph.Dependencies(r) {
			d, ok := dep.(*ast.Rule)
			if !ok {
				return append(out, nil)
			}
			add(d)
		}
	}
	return out
}

// decisionInput is a decision's input: a document, or a typed input whose
// members can be had one by one (ToolInput), so that a memoised decision
// needs only the members it is kept under.
type decisionInput interface {
	// member is the document's member k, nil if it has none.
	member(k *ast.Term) *ast.Term
	// document is the whole input; ok false when it is not an object.
	document() (v ast.Value, ok bool)
}

// valueInput is an input given as a document.
type valueInput struct{ v ast.Value }

func (in valueInput) member(k *ast.Term) *ast.Term {
	if obj, ok := in.v.(ast.Object); ok {
		return obj.Get(k)
	}
	return nil
}

func (in valueInput) document() (ast.Value, bool) {
	_, ok := in.v.(ast.Object)
	return in.v, ok
}

func (in ToolInput) document() (ast.Value, bool) { return in.Value(), true }

// key is the values of m's keys in input, and their hash; ok false when
// input is not an object.
func (m *decisionMemo) key(in decisionInput) (vals []*ast.Term, hash int, ok bool) {
	if v, isValue := in.(valueInput); isValue {
		if _, ok := v.document(); !ok {
			return nil, 0, false
		}
	}
	vals = make([]*ast.Term, len(m.keys))
	hash = 17
	for i, k := range m.keys {
		vals[i] = in.member(k)
		h := 0
		if vals[i] != nil {
			h = vals[i].Hash()
		}
		hash = hash*31 + h
	}
	return vals, hash, true
}

func (m *decisionMemo) get(hash int, vals []*ast.Term, refusal bool) (Decision, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.m[hash] {
		if e.refusal == refusal && sameTerms(e.vals, vals) {
			return Decision{Allow: e.d.Allow, Reasons: slices.Clone(e.d.Reasons)}, true
		}
	}
	return Decision{}, false
}

func (m *decisionMemo) put(hash int, vals []*ast.Term, refusal bool, d Decision) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || m.n >= memoLimit {
		m.m, m.n = map[int][]memoEntry{}, 0
	}
	m.m[hash] = append(m.m[hash], memoEntry{vals: vals, refusal: refusal, d: Decision{Allow: d.Allow, Reasons: slices.Clone(d.Reasons)}})
	m.n++
}

func sameTerms(a, b []*ast.Term) bool {
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) || a[i] != nil && !identical(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// identical reports whether a and b are the same document, numbers
// written alike: Rego's equality takes 1 and 1.0 for equal, but a rule
// can still tell them apart (sprintf, json.marshal).
func identical(a, b ast.Value) bool {
	switch a := a.(type) {
	case ast.Number:
		n, ok := b.(ast.Number)
		return ok && a == n
	case ast.String, ast.Boolean, ast.Null:
		return ast.Compare(a, b) == 0
	case *ast.Array:
		o, ok := b.(*ast.Array)
		if !ok || a.Len() != o.Len() {
			return false
		}
		for i := range a.Len() {
			if !identical(a.Elem(i).Value, o.Elem(i).Value) {
				return false
			}
		}
		return true
	case ast.Object:
		o, ok := b.(ast.Object)
		if !ok || a.Len() != o.Len() {
			return false
		}
		same := true
		a.Foreach(func(k, v *ast.Term) {
			if !same {
				return
			}
			_, isString := k.Value.(ast.String)
			w := o.Get(k)
			same = isString && w != nil && identical(v.Value, w.Value)
		})
		return same
	}
	// Sets and other values do not come from JSON input: compared as
	// written.
	return ast.Compare(a, b) == 0 && a.String() == b.String()
}

// memoised answers a decision from the snapshot's memo of point, or
// evaluates it with eval (on the whole input document) and keeps a
// decision evaluated without error.
func (s *snapshot) memoised(ctx context.Context, p *part, point Point, in decisionInput, refusal bool, eval func(ast.Value) (Decision, error)) (Decision, error) {
	whole := func() (Decision, error) {
		v, _ := in.document()
		return eval(v)
	}
	m := p.memos[point]
	if m == nil || s.noMemo || ctx.Err() != nil {
		return whole()
	}
	vals, hash, ok := m.key(in)
	if !ok {
		return whole()
	}
	if d, hit := m.get(hash, vals, refusal); hit {
		return d, nil
	}
	d, err := whole()
	if err == nil && keySize(vals, memoKeyBytes) <= memoKeyBytes {
		m.put(hash, vals, refusal, d)
	}
	return d, err
}

// keySize is about how many bytes vals take, counted up to past max.
func keySize(vals []*ast.Term, max int) int {
	n := 0
	var walk func(v ast.Value)
	walk = func(v ast.Value) {
		if n > max {
			return
		}
		n += 16
		switch v := v.(type) {
		case ast.String:
			n += len(v)
		case ast.Number:
			n += len(v)
		case *ast.Array:
			for i := range v.Len() {
				walk(v.Elem(i).Value)
			}
		case ast.Object:
			v.Foreach(func(k, e *ast.Term) {
				walk(k.Value)
				walk(e.Value)
			})
		case ast.Set:
			v.Foreach(func(e *ast.Term) { walk(e.Value) })
		}
	}
	for _, t := range vals {
		if t != nil {
			walk(t.Value)
		}
	}
	return n
}
