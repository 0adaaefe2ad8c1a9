package jsonschema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidationError is the first failure Validate found.
type ValidationError struct {
	// Pointer is the JSON pointer of the offending value ("" for the
	// whole value). Its tokens are the caller's property names, so it
	// is bounded: a token longer than 64 bytes is cut and ends in "…",
	// and a pointer longer than 512 bytes keeps its first and last
	// tokens around "/…".
	Pointer string
	// Keyword is the schema keyword that failed, or one of
	// [KeywordBudget], [KeywordDepth] and [KeywordCycle] when the
	// validation was cut short.
	Keyword string
	// Message says what is wrong without quoting the offending value.
	Message string

	depth int // the number of tokens of the pointer before it was bounded
}

func (e *ValidationError) Error() string {
	p := e.Pointer
	if p == "" {
		p = "/"
	}
	return fmt.Sprintf("at %q: %s (keyword %q)", p, e.Message, e.Keyword)
}

// The keywords of a validation cut short: not schema keywords, they say
// why the value was refused before the schema was applied to the end.
const (
	// KeywordBudget: applying the schema took more steps than one
	// validation may spend (about a million).
	KeywordBudget = "budget"
	// KeywordDepth: schema applications nested more than 512 deep.
	KeywordDepth = "depth"
	// KeywordCycle: a $ref led back to itself without descending into
	// the value, which would never end.
	KeywordCycle = "cycle"
)

// maxDepth bounds the nesting of schema applications, and maxSteps
// their number in one validation: a schema whose references fan out
// ({"allOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"}]}, a level
// after level) fails the value instead of taking exponential time.
// A check whose cost grows with the value is charged to the budget too:
// a string's pattern or format a step per 16 bytes, uniqueItems a step
// per 4 items, enum a step per value. A schema that fans out to a
// pattern on a long string would otherwise run a million scans of it.
const (
	maxDepth        = 512
	maxSteps        = 1 << 20
	stringCostShift = 4
)

// Validate validates v, a value as encoding/json (with or without
// UseNumber) or a YAML decoder produce it. It returns nil or a
// *ValidationError.
func (s *Schema) Validate(v any) error {
	st := &state{run: &run{}}
	e := st.validate(s.root, v)
	// A validation that ran out of its budget, or met a schema it cannot
	// apply, refuses the value whatever the rest found: a branch cut
	// short must not count as a branch that did not match (under not, if
	// or oneOf that would let the value through). Charges made after the
	// last check count too.
	if st.run.aborted == nil && st.run.steps > maxSteps {
		st.abort(KeywordBudget, "the schema costs too much to apply to this value")
	}
	if st.run.aborted != nil {
		return st.run.aborted
	}
	if e != nil {
		return e
	}
	return nil
}

type state struct {
	path   []string
	depth  int
	run    *run    // shared by the states of one validation
	active []frame // the $refs being followed, for cycles
}

// run is what the states of one validation share.
type run struct {
	steps int
	// aborted is the first failure that is not the value's (the budget
	// spent, the schema not applicable): the validation's answer.
	aborted *ValidationError
}

// abort fails the whole validation with keyword and message (see
// run.aborted).
func (st *state) abort(keyword, message string) *ValidationError {
	e := st.fail(keyword, "%s", message)
	if st.run.aborted == nil {
		st.run.aborted = e
	}
	return e
}

// frame is a $ref being followed at a depth in the value: meeting it
// again at the same depth is a cycle that never ends.
type frame struct {
	n     *node
	depth int
}

func (st *state) fail(keyword, format string, args ...any) *ValidationError {
	return &ValidationError{Pointer: pointer(st.path), Keyword: keyword, Message: fmt.Sprintf(format, args...), depth: len(st.path)}
}

// maxPointerToken and maxPointer bound the pointer of an error, as
// showName and listNames bound the names in a message: its tokens are
// the caller's property names, and an error goes into the audit log.
const (
	maxPointerToken = 64
	maxPointer      = 512
)

// Pointer is the JSON pointer of path, a list of unescaped tokens, bounded
// as a [ValidationError]'s is: for callers that report a place in a
// caller's value, as the validator does.
func Pointer(path []string) string { return pointer(path) }

// QuoteName quotes a caller's property name for a message, its first 64
// bytes and its length when longer.
func QuoteName(name string) string { return showName(name) }

// pointer is the JSON pointer of path, bounded: each token cut to its
// first maxPointerToken bytes (at a character boundary, before it is
// escaped) and marked with "…", and a pointer still longer than
// maxPointer cut to its first and last tokens around "/…".
func pointer(path []string) string {
	toks := make([]string, len(path))
	size := 0
	for i, tok := range path {
		toks[i] = "/" + pointerToken(tok)
		size += len(toks[i])
	}
	if size <= maxPointer {
		return strings.Join(toks, "")
	}
	// A bounded token is at most 1+2*maxPointerToken+3 bytes (every byte
	// escaped, and the mark), so each half holds at least one.
	const elided = "/…"
	half := (maxPointer - len(elided)) / 2
	first, n := 0, 0
	for first < len(toks) && n+len(toks[first]) <= half {
		n += len(toks[first])
		first++
	}
	last, n := len(toks), 0
	for last > first && n+len(toks[last-1]) <= half {
		n += len(toks[last-1])
		last--
	}
	return strings.Join(toks[:first], "") + elided + strings.Join(toks[last:], "")
}

// pointerToken escapes a pointer token, its first maxPointerToken bytes
// followed by "…" when longer.
func pointerToken(tok string) string {
	if len(tok) <= maxPointerToken {
		return escape(tok)
	}
	cut := maxPointerToken
	for cut > 0 && !utf8.RuneStart(tok[cut]) {
		cut--
	}
	return escape(tok[:cut]) + "…"
}

func (st *state) push(tok string) { st.path = append(st.path, tok) }
func (st *state) pop()            { st.path = st.path[:len(st.path)-1] }

// jsonType is the JSON type of v, "" if v is not a JSON value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	if _, ok := numberOf(v); ok {
		return "number"
	}
	return ""
}

func typeMatches(want, got string, v any) bool {
	switch {
	case want == got:
		return true
	case want == "integer" && got == "number":
		n, _ := numberOf(v)
		return n.isInteger()
	}
	return false
}

func (st *state) validate(n *node, v any) *ValidationError {
	if n.never {
		return st.fail("false", "no value is allowed here")
	}
	if st.run.aborted != nil {
		return st.run.aborted
	}
	st.depth++
	st.run.steps++
	defer func() { st.depth-- }()
	if st.run.steps > maxSteps {
		return st.abort(KeywordBudget, "the schema costs too much to apply to this value")
	}
	if st.depth > maxDepth {
		return st.abort(KeywordDepth, "the schema nests too deeply to apply to this value")
	}
	if n.ref != nil {
		f := frame{n: n, depth: len(st.path)}
		for _, a := range st.active {
			if a == f {
				return st.abort(KeywordCycle, "the schema refers to itself without a value to descend into")
			}
		}
		st.active = append(st.active, f)
		e := st.validate(n.ref, v)
		st.active = st.active[:len(st.active)-1]
		if e != nil {
			return e
		}
		if n.refOnly {
			return nil
		}
	}
	got := jsonType(v)
	if got == "" {
		return st.fail("type", "a value of Go type %T is not JSON", v)
	}
	if n.types != nil {
		ok := false
		for _, t := range n.types {
			if typeMatches(t, got, v) {
				ok = true
				break
			}
		}
		if !ok {
			if got == "number" {
				if num, _ := numberOf(v); num.isInteger() {
					got = "integer"
				}
			}
			return st.fail("type", "got %s, want %s", got, strings.Join(n.types, " or "))
		}
	}
	st.run.steps += len(n.enum)
	if n.enum != nil && !inEnum(n.enum, v) {
		return st.fail("enum", "value must be one of %s", listValues(n.enum))
	}
	if n.hasConst && !equal(n.constV, v) {
		return st.fail("const", "value must be %s", showValue(n.constV))
	}
	var e *ValidationError
	switch got {
	case "number":
		e = st.number(n, v)
	case "string":
		e = st.string(n, v.(string))
	case "array":
		e = st.array(n, v.([]any))
	case "object":
		e = st.object(n, v.(map[string]any))
	}
	if e != nil {
		return e
	}
	return st.applicators(n, v)
}

func (st *state) number(n *node, v any) *ValidationError {
	num, _ := numberOf(v)
	switch {
	case n.minimum != nil && cmpNumber(num, *n.minimum) < 0:
		return st.fail("minimum", "must be >= %s", n.minimum)
	case n.maximum != nil && cmpNumber(num, *n.maximum) > 0:
		return st.fail("maximum", "must be <= %s", n.maximum)
	case n.exclMin != nil && cmpNumber(num, *n.exclMin) <= 0:
		return st.fail("exclusiveMinimum", "must be > %s", n.exclMin)
	case n.exclMax != nil && cmpNumber(num, *n.exclMax) >= 0:
		return st.fail("exclusiveMaximum", "must be < %s", n.exclMax)
	case n.multipleOf != nil && !isMultiple(num, *n.multipleOf):
		return st.fail("multipleOf", "must be a multiple of %s", n.multipleOf)
	}
	return nil
}

func (st *state) string(n *node, s string) *ValidationError {
	if n.minLength >= 0 || n.maxLength >= 0 {
		l := utf8.RuneCountInString(s)
		if n.minLength >= 0 && l < n.minLength {
			return st.fail("minLength", "length must be >= %d, but got %d", n.minLength, l)
		}
		if n.maxLength >= 0 && l > n.maxLength {
			return st.fail("maxLength", "length must be <= %d, but got %d", n.maxLength, l)
		}
	}
	if n.pattern != nil || n.format != "" {
		st.run.steps += len(s) >> stringCostShift
	}
	if n.pattern != nil && !n.pattern.MatchString(s) {
		return st.fail("pattern", "does not match pattern %q", n.patternSrc)
	}
	if n.format != "" && !formatChecker(n.format)(s) {
		return st.fail("format", "is not a valid %q", n.format)
	}
	return nil
}

func (st *state) array(n *node, a []any) *ValidationError {
	if n.minItems >= 0 && len(a) < n.minItems {
		return st.fail("minItems", "must have at least %d items, but has %d", n.minItems, len(a))
	}
	if n.maxItems >= 0 && len(a) > n.maxItems {
		return st.fail("maxItems", "must have at most %d items, but has %d", n.maxItems, len(a))
	}
	if n.uniqueItems {
		st.run.steps += len(a) >> 2
		if i, j, dup := duplicate(a); dup {
			return st.fail("uniqueItems", "items at %d and %d are equal", i, j)
		}
	}
	for i, item := range a {
		var sub *node
		if i < len(n.prefixItems) {
			sub = n.prefixItems[i]
		} else {
			sub = n.items
		}
		if sub == nil {
			continue
		}
		if sub.never && i >= len(n.prefixItems) {
			kw := "items"
			if len(n.prefixItems) > 0 {
				kw = "additionalItems"
			}
			return st.fail(kw, "must have at most %d items, but has %d", len(n.prefixItems), len(a))
		}
		st.push(strconv.Itoa(i))
		e := st.validate(sub, item)
		st.pop()
		if e != nil {
			return e
		}
	}
	if n.contains != nil {
		matched := 0
		for i, item := range a {
			st.push(strconv.Itoa(i))
			e := st.try(n.contains, item)
			st.pop()
			if e == nil {
				matched++
			}
		}
		lo := 1
		if n.minContains >= 0 {
			lo = n.minContains
		}
		if matched < lo {
			return st.fail("contains", "must contain at least %d matching items, but has %d", lo, matched)
		}
		if n.maxContains >= 0 && matched > n.maxContains {
			return st.fail("maxContains", "must contain at most %d matching items, but has %d", n.maxContains, matched)
		}
	}
	return nil
}

func (st *state) object(n *node, o map[string]any) *ValidationError {
	if n.minProps >= 0 && len(o) < n.minProps {
		return st.fail("minProperties", "must have at least %d properties, but has %d", n.minProps, len(o))
	}
	if n.maxProps >= 0 && len(o) > n.maxProps {
		return st.fail("maxProperties", "must have at most %d properties, but has %d", n.maxProps, len(o))
	}
	var missing []string
	for _, r := range n.required {
		if _, ok := o[r]; !ok {
			missing = append(missing, strconv.Quote(r))
		}
	}
	if len(missing) == 1 {
		return st.fail("required", "missing property %s", missing[0])
	} else if len(missing) > 1 {
		return st.fail("required", "missing properties %s", strings.Join(missing, ", "))
	}
	keys := sortedKeys(o)
	for _, k := range keys {
		if deps, ok := n.dependentRequired[k]; ok {
			for _, d := range deps {
				if _, ok := o[d]; !ok {
					return st.fail("dependentRequired", "property %q requires property %q", k, d)
				}
			}
		}
	}
	if n.propertyNames != nil {
		for _, k := range keys {
			st.push(k) // the name, a value of its own
			e := st.try(n.propertyNames, k)
			st.pop()
			if e != nil {
				return st.fail("propertyNames", "property name %s: %s", showName(k), e.Message)
			}
		}
	}
	var extra []string
	for _, k := range keys {
		st.push(k)
		e, matched := st.property(n, k, o[k])
		st.pop()
		if e != nil {
			return e
		}
		if !matched && n.additional != nil {
			if n.additional.never {
				extra = append(extra, k)
				continue
			}
			st.push(k)
			e := st.validate(n.additional, o[k])
			st.pop()
			if e != nil {
				return e
			}
		}
	}
	if len(extra) > 0 {
		return st.fail("additionalProperties", "additional properties %s not allowed", listNames(extra))
	}
	for _, k := range keys {
		if sub, ok := n.dependentSchemas[k]; ok {
			if e := st.validate(sub, o); e != nil {
				return e
			}
		}
	}
	return nil
}

// property validates the value of property k against "properties" and
// "patternProperties"; matched says whether any of them named it.
func (st *state) property(n *node, k string, v any) (*ValidationError, bool) {
	matched := false
	if sub, ok := n.properties[k]; ok {
		matched = true
		if e := st.validate(sub, v); e != nil {
			return e, true
		}
	}
	for _, p := range n.patternProperties {
		if p.re.MatchString(k) {
			matched = true
			if e := st.validate(p.n, v); e != nil {
				return e, true
			}
		}
	}
	return nil, matched
}

func (st *state) applicators(n *node, v any) *ValidationError {
	for _, sub := range n.allOf {
		if e := st.validate(sub, v); e != nil {
			return e
		}
	}
	if n.anyOf != nil {
		var errs []*ValidationError
		for _, sub := range n.anyOf {
			e := st.try(sub, v)
			if e == nil {
				errs = nil
				break
			}
			errs = append(errs, e)
		}
		if errs != nil {
			return st.bestOf("anyOf", errs)
		}
	}
	if n.oneOf != nil {
		var errs []*ValidationError
		first := -1
		for i, sub := range n.oneOf {
			e := st.try(sub, v)
			if e != nil {
				errs = append(errs, e)
				continue
			}
			if first >= 0 {
				return st.fail("oneOf", "valid against subschemas %d and %d, want exactly one", first, i)
			}
			first = i
		}
		if first < 0 {
			return st.bestOf("oneOf", errs)
		}
	}
	if n.not != nil && st.try(n.not, v) == nil {
		return st.fail("not", "must not be valid against the \"not\" schema")
	}
	if n.ifN != nil {
		if st.try(n.ifN, v) == nil {
			if n.thenN != nil {
				return st.validate(n.thenN, v)
			}
		} else if n.elseN != nil {
			return st.validate(n.elseN, v)
		}
	}
	return nil
}

// try validates v against n on a copy of the path, for applicators
// whose failures are not the answer themselves.
func (st *state) try(n *node, v any) *ValidationError {
	sub := &state{path: append([]string(nil), st.path...), depth: st.depth, run: st.run,
		active: append([]frame(nil), st.active...)}
	return sub.validate(n, v)
}

// bestOf picks the error to report when no alternative matched: one
// that got further into the value than the others (the alternative the
// value was meant for, most likely), or else the keyword itself. How
// far is the depth of the pointer, not its length: a bounded pointer
// may be shorter than one less deep.
func (st *state) bestOf(keyword string, errs []*ValidationError) *ValidationError {
	here := st.fail(keyword, "")
	var best *ValidationError
	for _, e := range errs {
		if e.depth > here.depth && (best == nil || e.depth > best.depth) {
			best = e
		}
	}
	if best != nil {
		return best
	}
	here.Message = fmt.Sprintf("matches none of the %d %q alternatives (first: %s)", len(errs), keyword, errs[0].Message)
	return here
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if equal(e, v) {
			return true
		}
	}
	return false
}

// equal is JSON equality: numbers by value, objects by their members.
func equal(a, b any) bool {
	ta, tb := jsonType(a), jsonType(b)
	if ta != tb {
		return false
	}
	switch ta {
	case "number":
		na, _ := numberOf(a)
		nb, _ := numberOf(b)
		return cmpNumber(na, nb) == 0
	case "array":
		x, y := a.([]any), b.([]any)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case "object":
		x, y := a.(map[string]any), b.(map[string]any)
		if len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	case "":
		return false
	}
	return a == b
}

// duplicate finds two equal items of a, i < j, by sorting their
// indices in the order of order: n log n comparisons, where comparing
// every pair would let a long array of distinct items cost minutes.
func duplicate(a []any) (i, j int, dup bool) {
	if len(a) < 2 {
		return 0, 0, false
	}
	idx := make([]int, len(a))
	for k := range idx {
		idx[k] = k
	}
	slices.SortStableFunc(idx, func(x, y int) int { return order(a[x], a[y]) })
	for k := 1; k < len(idx); k++ {
		if order(a[idx[k-1]], a[idx[k]]) == 0 {
			return idx[k-1], idx[k], true // stable: idx[k-1] < idx[k]
		}
	}
	return 0, 0, false
}

// typeRank orders JSON types for order.
func typeRank(t string) int {
	return slices.Index([]string{"null", "boolean", "number", "string", "array", "object"}, t)
}

// order is a total order of JSON values that is 0 exactly when equal
// says they are equal.
func order(a, b any) int {
	ta, tb := jsonType(a), jsonType(b)
	if ta != tb {
		return cmpInt(typeRank(ta), typeRank(tb))
	}
	switch ta {
	case "boolean":
		x, y := a.(bool), b.(bool)
		if x == y {
			return 0
		} else if !x {
			return -1
		}
		return 1
	case "number":
		na, _ := numberOf(a)
		nb, _ := numberOf(b)
		return cmpNumber(na, nb)
	case "string":
		return strings.Compare(a.(string), b.(string))
	case "array":
		x, y := a.([]any), b.([]any)
		if c := cmpInt(len(x), len(y)); c != 0 {
			return c
		}
		for i := range x {
			if c := order(x[i], y[i]); c != 0 {
				return c
			}
		}
		return 0
	case "object":
		x, y := a.(map[string]any), b.(map[string]any)
		if c := cmpInt(len(x), len(y)); c != 0 {
			return c
		}
		kx, ky := sortedKeys(x), sortedKeys(y)
		if c := slices.Compare(kx, ky); c != 0 {
			return c
		}
		for _, k := range kx {
			if c := order(x[k], y[k]); c != 0 {
				return c
			}
		}
		return 0
	}
	return 0 // null, or two values that are not JSON (never both valid)
}

// listNames shows a value's property names, bounded in length: they are
// the caller's, and a message goes into the audit log.
func listNames(names []string) string {
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		if b.Len() > 200 {
			fmt.Fprintf(&b, "… (%d in all)", len(names))
			break
		}
		b.WriteString(showName(k))
	}
	return b.String()
}

// showName quotes a property name, its first 64 bytes when longer.
func showName(k string) string {
	const most = 64
	if len(k) <= most {
		return strconv.Quote(k)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(k[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(k[:cut]), len(k))
}

// listValues shows schema values (an enum), bounded in length.
func listValues(vs []any) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		if b.Len() > 200 {
			fmt.Fprintf(&b, "… (%d in all)", len(vs))
			break
		}
		b.WriteString(showValue(v))
	}
	return b.String()
}

func showValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	}
	if n, ok := numberOf(v); ok {
		return n.String()
	}
	return fmt.Sprint(v)
}
