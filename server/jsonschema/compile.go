package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Schema is a compiled schema. It is safe for concurrent use.
type Schema struct {
	root *node
}

// draft is a JSON Schema draft, by year or number.
type draft int

const (
	draft4    draft = 4
	draft6    draft = 6
	draft7    draft = 7
	draft2019 draft = 2019
	draft2020 draft = 2020
)

// unsupported are keywords that change what validates and that this
// package does not evaluate: a schema using one fails to compile.
var unsupported = []string{"$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems"}

// typeNames are the values "type" may take.
var typeNames = []string{"null", "boolean", "object", "array", "number", "string", "integer"}

// node is one compiled (sub)schema.
type node struct {
	ptr     string // the schema's JSON pointer in its document, for errors
	never   bool   // the false schema
	ref     *node
	refOnly bool // $ref siblings are ignored (drafts before 2019-09)

	types                []string
	enum                 []any
	hasConst             bool
	constV               any
	minimum, maximum     *number
	exclMin, exclMax     *number
	multipleOf           *number
	minLength, maxLength int // -1: unset
	pattern              *regexp.Regexp
	patternSrc           string // as the schema wrote it, for messages
	format               string // asserted formats only

	prefixItems         []*node
	items               *node // every item after prefixItems
	contains            *node
	minContains         int // -1: unset (1 when contains is set)
	maxContains         int
	minItems, maxItems  int
	uniqueItems         bool
	properties          map[string]*node
	patternProperties   []patternNode
	additional          *node
	propertyNames       *node
	required            []string
	minProps, maxProps  int
	dependentRequired   map[string][]string
	dependentSchemas    map[string]*node
	allOf, anyOf, oneOf []*node
	not                 *node
	ifN, thenN, elseN   *node
}

type patternNode struct {
	re *regexp.Regexp
	n  *node
}

// Decode parses one JSON document the way Validate expects values:
// numbers stay json.Number, so large and exact values keep their
// spelling. Trailing data after the document is an error.
func Decode(r io.Reader) (any, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid character after top-level value")
	}
	return v, nil
}

// Compile compiles a self-contained schema document.
func Compile(raw []byte) (*Schema, error) {
	doc, err := Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	return CompileValue(doc)
}

// CompileValue compiles a schema document already decoded (as Decode or
// encoding/json would decode it).
func CompileValue(doc any) (*Schema, error) {
	c := &compiler{doc: doc, draft: draft2020, nodes: map[string]*node{}, anchors: map[string]string{}}
	if obj, ok := doc.(map[string]any); ok {
		if s, ok := obj["$schema"]; ok {
			str, _ := s.(string)
			d, ok := draftOf(str)
			if !ok {
				return nil, fmt.Errorf("$schema %q: unsupported draft (want 2020-12, 2019-09, draft-07, draft-06 or draft-04)", str)
			}
			c.draft = d
		}
		if id, ok := obj[c.idKey()].(string); ok {
			c.base, _, _ = strings.Cut(id, "#")
		}
	}
	if err := c.scan(doc, "", true, false); err != nil {
		return nil, err
	}
	root, err := c.compile(doc, "")
	if err != nil {
		return nil, err
	}
	if err := c.link(); err != nil {
		return nil, err
	}
	return &Schema{root: root}, nil
}

func draftOf(s string) (draft, bool) {
	s = strings.TrimSuffix(s, "#")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	switch s {
	case "json-schema.org/draft-04/schema":
		return draft4, true
	case "json-schema.org/draft-06/schema":
		return draft6, true
	case "json-schema.org/draft-07/schema":
		return draft7, true
	case "json-schema.org/draft/2019-09/schema":
		return draft2019, true
	case "json-schema.org/draft/2020-12/schema":
		return draft2020, true
	}
	return 0, false
}

type compiler struct {
	doc     any
	draft   draft
	base    string            // the root's $id, without fragment
	nodes   map[string]*node  // by JSON pointer
	anchors map[string]string // anchor name -> JSON pointer
	refs    []pendingRef      // $refs to resolve once every node exists
	nested  string            // pointer of an embedded $id, if any
	insts   int               // the size of the patterns compiled so far
}

type pendingRef struct {
	n   *node
	ref string
}

func (c *compiler) idKey() string {
	if c.draft == draft4 {
		return "id"
	}
	return "$id"
}

// scan records anchors and embedded $ids before compiling, so a $ref
// can name an anchor defined anywhere. names is set when the keys of v
// are property names (under "properties", "$defs" and the like), not
// keywords.
func (c *compiler) scan(v any, ptr string, root, names bool) error {
	switch v := v.(type) {
	case map[string]any:
		if !names {
			if a, ok := v["$anchor"].(string); ok && c.draft >= draft2019 {
				if err := c.anchor(a, ptr); err != nil {
					return err
				}
			}
			if id, ok := v[c.idKey()].(string); ok && !root {
				if frag, ok := strings.CutPrefix(id, "#"); ok && c.draft < draft2019 {
					if err := c.anchor(frag, ptr); err != nil {
						return err
					}
				} else if c.nested == "" {
					c.nested = ptr
				}
			}
		}
		for _, k := range sortedKeys(v) {
			sub := false
			if !names {
				switch k {
				case "enum", "const", "default", "examples":
					continue // data, not schemas
				case "properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies":
					sub = true
				}
			}
			if err := c.scan(v[k], ptr+"/"+escape(k), false, sub); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := c.scan(e, ptr+"/"+strconv.Itoa(i), false, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// anchor records an anchor; one name defined twice makes a $ref to it
// ambiguous, so the schema is refused.
func (c *compiler) anchor(name, ptr string) error {
	if prev, ok := c.anchors[name]; ok {
		return c.errorf(ptr, "anchor %q is also defined at %q", name, "#"+prev)
	}
	c.anchors[name] = ptr
	return nil
}

func (c *compiler) errorf(ptr, format string, args ...any) error {
	return fmt.Errorf("at %q: %s", "#"+ptr, fmt.Sprintf(format, args...))
}

// compile compiles the schema v found at ptr, once per pointer.
func (c *compiler) compile(v any, ptr string) (*node, error) {
	if n, ok := c.nodes[ptr]; ok {
		return n, nil
	}
	n := &node{ptr: ptr, minLength: -1, maxLength: -1, minItems: -1, maxItems: -1, minProps: -1, maxProps: -1, minContains: -1, maxContains: -1}
	c.nodes[ptr] = n
	switch s := v.(type) {
	case bool:
		n.never = !s
		return n, nil
	case map[string]any:
		return n, c.fill(n, s, ptr)
	}
	return nil, c.errorf(ptr, "a schema must be an object or a boolean")
}

func (c *compiler) sub(s map[string]any, ptr, key string) (*node, error) {
	v, ok := s[key]
	if !ok {
		return nil, nil
	}
	return c.compile(v, ptr+"/"+escape(key))
}

func (c *compiler) subList(s map[string]any, ptr, key string) ([]*node, error) {
	v, ok := s[key]
	if !ok {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, c.errorf(ptr, "%q must be a non-empty array of schemas", key)
	}
	out := make([]*node, len(arr))
	for i, e := range arr {
		n, err := c.compile(e, ptr+"/"+escape(key)+"/"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func (c *compiler) subMap(s map[string]any, ptr, key string) (map[string]*node, error) {
	v, ok := s[key]
	if !ok {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, c.errorf(ptr, "%q must be an object of schemas", key)
	}
	out := make(map[string]*node, len(m))
	for _, k := range sortedKeys(m) {
		n, err := c.compile(m[k], ptr+"/"+escape(key)+"/"+escape(k))
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, nil
}

func (c *compiler) count(s map[string]any, ptr, key string) (int, error) {
	v, ok := s[key]
	if !ok {
		return -1, nil
	}
	n, ok := numberOf(v)
	if !ok || !n.isInteger() || n.f < 0 || n.f > 1<<31-1 { // an int on every platform
		return 0, c.errorf(ptr, "%q must be a non-negative integer", key)
	}
	return int(n.f), nil
}

func (c *compiler) num(s map[string]any, ptr, key string) (*number, error) {
	v, ok := s[key]
	if !ok {
		return nil, nil
	}
	n, ok := numberOf(v)
	if !ok {
		return nil, c.errorf(ptr, "%q must be a number", key)
	}
	return &n, nil
}

// regexp compiles the pattern src of keyword key, within the bounds on
// one pattern and on the patterns of a schema (see maxPattern).
func (c *compiler) regexp(ptr, key, src string) (*regexp.Regexp, error) {
	if len(src) > maxPattern {
		return nil, c.errorf(ptr, "%q: a pattern of %d bytes is longer than the %d allowed", key, len(src), maxPattern)
	}
	limit := min(maxPatternInsts, maxSchemaPatternInsts-c.insts)
	re, size, err := compileECMA(src, limit)
	switch {
	case errors.Is(err, errPatternSize) && limit < maxPatternInsts:
		return nil, c.errorf(ptr, "%q: the schema's patterns compile to more than %d instructions in all (a{1000} counts 1000)", key, maxSchemaPatternInsts)
	case errors.Is(err, errPatternSize):
		return nil, c.errorf(ptr, "%q: a pattern compiles to more than %d instructions (a{1000} counts 1000)", key, maxPatternInsts)
	case err != nil:
		return nil, c.errorf(ptr, "%q: %q is not a regular expression Go accepts: %v", key, src, err)
	}
	c.insts += size
	return re, nil
}

func (c *compiler) strings(s map[string]any, ptr, key string) ([]string, error) {
	v, ok := s[key]
	if !ok {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, c.errorf(ptr, "%q must be an array of strings", key)
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		str, ok := e.(string)
		if !ok {
			return nil, c.errorf(ptr, "%q must be an array of strings", key)
		}
		out[i] = str
	}
	return out, nil
}

// fill compiles the keywords of the schema object s into n.
func (c *compiler) fill(n *node, s map[string]any, ptr string) error {
	for _, k := range unsupported {
		if _, ok := s[k]; ok {
			return c.errorf(ptr, "keyword %q is not supported", k)
		}
	}
	var err error
	if r, ok := s["$ref"]; ok {
		ref, ok := r.(string)
		if !ok {
			return c.errorf(ptr, "\"$ref\" must be a string")
		}
		c.refs = append(c.refs, pendingRef{n: n, ref: ref})
		if c.draft < draft2019 {
			n.refOnly = true
			return nil
		}
	}

	if t, ok := s["type"]; ok {
		switch t := t.(type) {
		case string:
			n.types = []string{t}
		case []any:
			for _, e := range t {
				str, _ := e.(string)
				n.types = append(n.types, str)
			}
		}
		if len(n.types) == 0 {
			return c.errorf(ptr, "\"type\" must be a type name or an array of them")
		}
		for _, name := range n.types {
			if !slices.Contains(typeNames, name) {
				return c.errorf(ptr, "\"type\": %q is not a JSON Schema type", name)
			}
		}
	}
	if e, ok := s["enum"]; ok {
		arr, ok := e.([]any)
		if !ok {
			return c.errorf(ptr, "\"enum\" must be an array")
		}
		n.enum = arr
		if n.enum == nil {
			n.enum = []any{}
		}
	}
	if cv, ok := s["const"]; ok && c.draft >= draft6 {
		n.hasConst, n.constV = true, cv
	}

	// Numbers.
	if n.minimum, err = c.num(s, ptr, "minimum"); err != nil {
		return err
	}
	if n.maximum, err = c.num(s, ptr, "maximum"); err != nil {
		return err
	}
	if c.draft == draft4 {
		for _, k := range []string{"exclusiveMinimum", "exclusiveMaximum"} {
			if v, ok := s[k]; ok {
				if _, isBool := v.(bool); !isBool {
					return c.errorf(ptr, "%q must be a boolean in draft-04", k)
				}
			}
		}
		if b, _ := s["exclusiveMinimum"].(bool); b {
			n.exclMin, n.minimum = n.minimum, nil
		}
		if b, _ := s["exclusiveMaximum"].(bool); b {
			n.exclMax, n.maximum = n.maximum, nil
		}
	} else {
		if n.exclMin, err = c.num(s, ptr, "exclusiveMinimum"); err != nil {
			return err
		}
		if n.exclMax, err = c.num(s, ptr, "exclusiveMaximum"); err != nil {
			return err
		}
	}
	if n.multipleOf, err = c.num(s, ptr, "multipleOf"); err != nil {
		return err
	}
	if n.multipleOf != nil {
		// The sign of the decimal, not of the float64: 1e-400 is > 0
		// though it rounds to 0.
		if d, ok := n.multipleOf.decimal(); !ok || d.sign() <= 0 {
			return c.errorf(ptr, "\"multipleOf\" must be greater than 0")
		}
		// A divisor with no exact value that is cheap would refuse every
		// number: the schema is refused instead.
		if _, ok := n.multipleOf.rat(); !ok {
			return c.errorf(ptr, "\"multipleOf\" must be written in at most %d characters, with an exponent within ±%d", maxRatLiteral, maxRatExp)
		}
	}

	// Strings.
	if n.minLength, err = c.count(s, ptr, "minLength"); err != nil {
		return err
	}
	if n.maxLength, err = c.count(s, ptr, "maxLength"); err != nil {
		return err
	}
	if p, ok := s["pattern"]; ok {
		src, ok := p.(string)
		if !ok {
			return c.errorf(ptr, "\"pattern\" must be a string")
		}
		if n.pattern, err = c.regexp(ptr, "pattern", src); err != nil {
			return err
		}
		n.patternSrc = src
	}
	if f, ok := s["format"].(string); ok && c.draft < draft2019 && formatChecker(f) != nil {
		n.format = f
	}

	// Arrays.
	if items, ok := s["items"]; ok {
		if arr, isArr := items.([]any); isArr && c.draft < draft2020 {
			for i, e := range arr {
				sub, err := c.compile(e, ptr+"/items/"+strconv.Itoa(i))
				if err != nil {
					return err
				}
				n.prefixItems = append(n.prefixItems, sub)
			}
			if n.items, err = c.sub(s, ptr, "additionalItems"); err != nil {
				return err
			}
		} else if n.items, err = c.compile(items, ptr+"/items"); err != nil {
			return err
		}
	}
	if c.draft >= draft2020 {
		if _, ok := s["prefixItems"]; ok {
			if n.prefixItems, err = c.subList(s, ptr, "prefixItems"); err != nil {
				return err
			}
		}
	}
	if c.draft >= draft6 {
		if n.contains, err = c.sub(s, ptr, "contains"); err != nil {
			return err
		}
	}
	if c.draft >= draft2019 {
		if n.minContains, err = c.count(s, ptr, "minContains"); err != nil {
			return err
		}
		if n.maxContains, err = c.count(s, ptr, "maxContains"); err != nil {
			return err
		}
	}
	if n.minItems, err = c.count(s, ptr, "minItems"); err != nil {
		return err
	}
	if n.maxItems, err = c.count(s, ptr, "maxItems"); err != nil {
		return err
	}
	if u, ok := s["uniqueItems"]; ok {
		b, ok := u.(bool)
		if !ok {
			return c.errorf(ptr, "\"uniqueItems\" must be a boolean")
		}
		n.uniqueItems = b
	}

	// Objects.
	if n.properties, err = c.subMap(s, ptr, "properties"); err != nil {
		return err
	}
	pp, err := c.subMap(s, ptr, "patternProperties")
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(pp) {
		re, err := c.regexp(ptr, "patternProperties", k)
		if err != nil {
			return err
		}
		n.patternProperties = append(n.patternProperties, patternNode{re: re, n: pp[k]})
	}
	if n.additional, err = c.sub(s, ptr, "additionalProperties"); err != nil {
		return err
	}
	if c.draft >= draft6 {
		if n.propertyNames, err = c.sub(s, ptr, "propertyNames"); err != nil {
			return err
		}
	}
	if r, ok := s["required"]; ok {
		if b, isBool := r.(bool); isBool && c.draft == draft4 {
			_ = b // draft-03 style, meaningless in draft-04: ignored
		} else if n.required, err = c.strings(s, ptr, "required"); err != nil {
			return err
		}
	}
	if n.minProps, err = c.count(s, ptr, "minProperties"); err != nil {
		return err
	}
	if n.maxProps, err = c.count(s, ptr, "maxProperties"); err != nil {
		return err
	}
	if err := c.dependencies(n, s, ptr); err != nil {
		return err
	}

	// Applicators.
	if n.allOf, err = c.subList(s, ptr, "allOf"); err != nil {
		return err
	}
	if n.anyOf, err = c.subList(s, ptr, "anyOf"); err != nil {
		return err
	}
	if n.oneOf, err = c.subList(s, ptr, "oneOf"); err != nil {
		return err
	}
	if n.not, err = c.sub(s, ptr, "not"); err != nil {
		return err
	}
	if c.draft >= draft7 {
		if n.ifN, err = c.sub(s, ptr, "if"); err != nil {
			return err
		}
		if n.thenN, err = c.sub(s, ptr, "then"); err != nil {
			return err
		}
		if n.elseN, err = c.sub(s, ptr, "else"); err != nil {
			return err
		}
	}

	// Schemas kept for $ref only are compiled when a $ref names them.
	return nil
}

// dependencies reads dependentRequired and dependentSchemas (2019-09 on)
// or dependencies (before), which holds either kind per property.
func (c *compiler) dependencies(n *node, s map[string]any, ptr string) error {
	var err error
	if c.draft >= draft2019 {
		if dr, ok := s["dependentRequired"]; ok {
			m, ok := dr.(map[string]any)
			if !ok {
				return c.errorf(ptr, "\"dependentRequired\" must be an object")
			}
			n.dependentRequired = map[string][]string{}
			for k := range m {
				if n.dependentRequired[k], err = c.strings(m, ptr+"/dependentRequired", k); err != nil {
					return err
				}
			}
		}
		n.dependentSchemas, err = c.subMap(s, ptr, "dependentSchemas")
		return err
	}
	d, ok := s["dependencies"]
	if !ok {
		return nil
	}
	m, ok := d.(map[string]any)
	if !ok {
		return c.errorf(ptr, "\"dependencies\" must be an object")
	}
	for _, k := range sortedKeys(m) {
		if _, isArr := m[k].([]any); isArr {
			if n.dependentRequired == nil {
				n.dependentRequired = map[string][]string{}
			}
			if n.dependentRequired[k], err = c.strings(m, ptr+"/dependencies", k); err != nil {
				return err
			}
			continue
		}
		sub, err := c.compile(m[k], ptr+"/dependencies/"+escape(k))
		if err != nil {
			return err
		}
		if n.dependentSchemas == nil {
			n.dependentSchemas = map[string]*node{}
		}
		n.dependentSchemas[k] = sub
	}
	return nil
}

// link resolves every $ref to the node it names, compiling schemas
// reached only through references (under $defs, say).
func (c *compiler) link() error {
	for i := 0; i < len(c.refs); i++ { // compiling a target may add refs
		r := c.refs[i]
		if c.nested != "" {
			return c.errorf(r.n.ptr, "$ref %q: a schema that embeds another $id (at %q) cannot use $ref here", r.ref, "#"+c.nested)
		}
		target, err := c.resolve(r.n.ptr, r.ref)
		if err != nil {
			return err
		}
		r.n.ref = target
	}
	return nil
}

func (c *compiler) resolve(from, ref string) (*node, error) {
	base, frag, _ := strings.Cut(ref, "#")
	if base != "" && base != c.base {
		return nil, c.errorf(from, "$ref %q: external references are not allowed; refer within the schema (#/$defs/...)", ref)
	}
	frag, err := url.PathUnescape(frag)
	if err != nil {
		return nil, c.errorf(from, "$ref %q: %v", ref, err)
	}
	ptr := frag
	if frag != "" && !strings.HasPrefix(frag, "/") {
		p, ok := c.anchors[frag]
		if !ok {
			return nil, c.errorf(from, "$ref %q: no anchor %q in the schema", ref, frag)
		}
		ptr = p
	}
	v, ok := lookup(c.doc, ptr)
	if !ok {
		return nil, c.errorf(from, "$ref %q: nothing at %q in the schema", ref, "#"+ptr)
	}
	return c.compile(v, canonical(ptr))
}

// lookup follows a JSON pointer into doc.
func lookup(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	v := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch cur := v.(type) {
		case map[string]any:
			next, ok := cur[tok]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(cur) || strconv.Itoa(i) != tok {
				return nil, false
			}
			v = cur[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// canonical re-escapes a pointer's tokens the way compile names nodes,
// so a $ref and the walk reach the same node.
func canonical(ptr string) string {
	if ptr == "" {
		return ""
	}
	var b strings.Builder
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		b.WriteByte('/')
		b.WriteString(escape(tok))
	}
	return b.String()
}

func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
