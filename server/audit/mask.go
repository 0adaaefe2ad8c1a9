package audit

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
)

// Masker evaluates mask rules against a record. Its input is the record
// as decoded JSON (what the log would hold); it returns the values of the
// rules, shaped as OPA's decision-log masks: a JSON pointer string to
// erase, or an object {"op": "remove"|"upsert", "path": pointer,
// "value": v}. The engine implements it with data.mcp.audit.mask.
type Masker interface {
	Mask(ctx context.Context, record map[string]any) ([]any, error)
}

// maskSkipper is a Masker that can tell from a record's input alone that
// no rule matches it (*engine.Engine can while only the built-in rules are
// in force), sparing the record's map.
type maskSkipper interface {
	MaskSkips(ctx context.Context, input any) bool
}

// maskable are the record fields mask rules may touch: what a client
// chose. The chain, the ids, the kind and the result are not theirs.
var maskable = []string{"/input", "/reasons", "/error", "/tool", "/client"}

type maskOp struct {
	remove bool
	path   string
	value  any
}

func parseMasks(rules []any) []maskOp {
	var ops []maskOp
	for _, r := range rules {
		switch x := r.(type) {
		case string:
			ops = append(ops, maskOp{remove: true, path: x})
		case map[string]any:
			path, _ := x["path"].(string)
			switch x["op"] {
			case "remove":
				ops = append(ops, maskOp{remove: true, path: path})
			case "upsert":
				ops = append(ops, maskOp{path: path, value: x["value"]})
			}
		}
	}
	// Removals first, then upserts, each by path: the outcome does not
	// depend on the order rules were evaluated in.
	slices.SortFunc(ops, func(a, b maskOp) int {
		if a.remove != b.remove {
			if a.remove {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.path, b.path)
	})
	return ops
}

func allowedPointer(p string) bool {
	for _, m := range maskable {
		if p == m || strings.HasPrefix(p, m+"/") {
			return true
		}
	}
	return false
}

func pointerTokens(p string) []string {
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks
}

// applyMasks applies ops to rec and returns the pointers erased and
// masked (replaced). Pointers outside the maskable fields, and those that
// do not resolve, are skipped.
func applyMasks(rec map[string]any, ops []maskOp) (erased, masked []string) {
	for _, op := range ops {
		if !allowedPointer(op.path) {
			continue
		}
		toks := pointerTokens(op.path)
		var parent any = rec
		for _, t := range toks[:len(toks)-1] {
			parent = child(parent, t)
		}
		last := toks[len(toks)-1]
		switch p := parent.(type) {
		case map[string]any:
			if op.remove {
				if _, ok := p[last]; ok {
					delete(p, last)
					erased = append(erased, op.path)
				}
			} else {
				p[last] = op.value
				masked = append(masked, op.path)
			}
		case []any:
			i, err := strconv.Atoi(last)
			if err != nil || i < 0 || i >= len(p) {
				continue
			}
			if op.remove {
				p[i] = nil
				erased = append(erased, op.path)
			} else {
				p[i] = op.value
				masked = append(masked, op.path)
			}
		}
	}
	return erased, masked
}

func child(v any, tok string) any {
	switch x := v.(type) {
	case map[string]any:
		return x[tok]
	case []any:
		i, err := strconv.Atoi(tok)
		if err != nil || i < 0 || i >= len(x) {
			return nil
		}
		return x[i]
	}
	return nil
}

// toMap turns an encoded record body into the document mask rules see.
func toMap(body []byte) (map[string]any, error) {
	v := decode(body)
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errNotObject
	}
	return m, nil
}

var errNotObject = jsonError("record does not decode to an object")

type jsonError string

func (e jsonError) Error() string { return string(e) }
