package policy

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder fills typed structs from a YAML node tree, refusing unknown keys
// and wrong types, and remembering the line of every key for later checks.
type decoder struct {
	file   string
	lines  map[string]int // key path -> line
	lookup func(string) (string, bool)
	home   string
	// refs are the variables a ${VAR} named, set or not.
	refs map[string]bool
	// errs are the problems found so far: decoding goes on past one, so a
	// file's every problem is reported at once.
	errs []error
}

// note keeps err, if any, and decoding goes on.
func (d *decoder) note(err error) {
	if err != nil {
		d.errs = append(d.errs, err)
	}
}

func (d *decoder) errf(n *yaml.Node, key, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// lineOf is the line of key, or of its nearest parent when the key itself
// is absent from the file.
func (d *decoder) lineOf(key string) int { return lineIn(d.lines, key) }

// lineIn looks a dotted key path up in lines, falling back to its parents.
func lineIn(lines map[string]int, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return fmt.Sprintf("%q", n.Value)
}

// expandMode says how a string value takes ${VAR} and ~ expansion.
type expandMode int

const (
	literal  expandMode = iota // no expansion
	pathMode                   // a path: ${VAR} and ~ expanded
	globMode                   // a path glob: expanded values are glob-escaped
)

// modeOf reads a field's policy tag: "path" or "glob".
func modeOf(tag string) expandMode {
	switch tag {
	case "path":
		return pathMode
	case "glob":
		return globMode
	}
	return literal
}

// decode fills v (a pointer's element) from n. expand says whether and
// how string values take ${VAR} expansion.
func (d *decoder) decode(n *yaml.Node, key string, v reflect.Value, expand expandMode) error {
	if n.Kind == yaml.AliasNode {
		return d.errf(n, key, "YAML aliases are not supported in a policy")
	}
	d.lines[key] = n.Line
	if v.Kind() == reflect.Pointer {
		v.Set(reflect.New(v.Type().Elem()))
		if n.Tag == "!!null" {
			// A key written with no value is present and empty: for an
			// allowlist that means nothing is allowed, never everything.
			return nil
		}
		return d.decode(n, key, v.Elem(), expand)
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.decodeStruct(n, key, v)
	case reflect.Slice:
		if n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return d.errf(n, key, "want a list, got %s", kindName(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.note(d.decode(c, fmt.Sprintf("%s[%d]", key, i), s.Index(i), expand))
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return d.errf(n, key, "want a mapping, got %s", kindName(n))
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.note(d.errf(k, key, "keys must be plain names"))
				continue
			}
			ck := join(key, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.note(d.errf(k, ck, "duplicate key"))
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.note(d.decode(val, ck, elem, expand))
			d.lines[ck] = k.Line
			m.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
		v.Set(m)
		return nil
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return d.errf(n, key, "want %s, got %s", v.Kind(), kindName(n))
	}
	switch v.Kind() {
	case reflect.String:
		if n.Tag != "!!str" {
			return d.errf(n, key, "want a string, got %s (quote it)", kindName(n))
		}
		s := n.Value
		if expand != literal {
			var err error
			if s, err = d.expandAs(s, expand == globMode); err != nil {
				return d.errf(n, key, "%v", err)
			}
		}
		v.SetString(s)
	case reflect.Bool:
		if n.Tag != "!!bool" {
			return d.errf(n, key, "want true or false, got %s", kindName(n))
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int:
		if n.Tag != "!!int" {
			return d.errf(n, key, "want an integer, got %s", kindName(n))
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
			return d.errf(n, key, "integer %s is out of range", n.Value)
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Tag != "!!int" && n.Tag != "!!float" {
			return d.errf(n, key, "want a number, got %s", kindName(n))
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return d.errf(n, key, "%q is not a finite number", n.Value)
		}
		v.SetFloat(f)
	default:
		return d.errf(n, key, "unsupported field type %s", v.Type())
	}
	return nil
}

func (d *decoder) decodeStruct(n *yaml.Node, key string, v reflect.Value) error {
	if n.Tag == "!!null" {
		return nil // an empty section
	}
	if n.Kind != yaml.MappingNode {
		if key == "" {
			return d.errf(n, key, "a policy must be a YAML mapping")
		}
		return d.errf(n, key, "want a mapping, got %s", kindName(n))
	}
	t := v.Type()
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.note(d.errf(k, key, "keys must be plain names"))
			continue
		}
		ck := join(key, k.Value)
		if seen[k.Value] {
			d.note(d.errf(k, ck, "duplicate key"))
			continue
		}
		seen[k.Value] = true
		field, ok := fieldByTag(t, k.Value)
		if !ok {
			d.note(d.errf(k, ck, "unknown key (known: %s)", strings.Join(knownKeys(t), ", ")))
			continue
		}
		sf := t.Field(field)
		d.note(d.decode(val, ck, v.Field(field), modeOf(sf.Tag.Get("policy"))))
		d.lines[ck] = k.Line
	}
	return nil
}

func fieldByTag(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := strings.Split(f.Tag.Get("yaml"), ",")[0]; f.IsExported() && tag != "" && tag == name && tag != "-" {
			return i, true
		}
	}
	return 0, false
}

func knownKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	return out
}

// expand replaces ${VAR} and ${VAR:-default}, and a leading ~/. An unset
// variable without a default is an error; $$ is a literal dollar.
func (d *decoder) expand(s string) (string, error) { return d.expandAs(s, false) }

// expandAs is expand; with glob set, every value it substitutes (a
// variable, a default, the home directory) is glob-escaped, so a home of
// /home/proj[1] matches itself and not /home/proj1.
func (d *decoder) expandAs(s string, glob bool) (string, error) {
	quote := func(v string) string {
		if glob {
			return GlobEscape(v)
		}
		return v
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validVarName(name) {
			return "", fmt.Errorf("bad variable reference ${%s}", expr)
		}
		if d.refs == nil {
			d.refs = map[string]bool{}
		}
		d.refs[name] = true
		val, ok := d.lookup(name)
		switch {
		case ok && val != "":
			b.WriteString(quote(val))
		case hasDef:
			b.WriteString(quote(def))
		case ok:
			return "", fmt.Errorf("variable %s is empty (use ${%s:-default})", name, name)
		default:
			return "", fmt.Errorf("variable %s is not set (use ${%s:-default})", name, name)
		}
		i += end
	}
	out := b.String()
	if out == "~" || strings.HasPrefix(out, "~/") {
		if d.home == "" {
			return "", fmt.Errorf("cannot expand ~: no home directory")
		}
		out = quote(d.home) + out[1:]
	}
	return out, nil
}

// globMeta are the characters glob.match gives a meaning.
const globMeta = `*?[]{}\`

// GlobEscape quotes every glob character of s with a backslash, so the
// pattern matches s literally.
func GlobEscape(s string) string {
	if !strings.ContainsAny(s, globMeta) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(globMeta, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func validVarName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func osLookup(name string) (string, bool) { return os.LookupEnv(name) }
