package server

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Formats a tool's input schema may put on a string property so that the
// pipeline decides its value before the handler runs.
const (
	FormatPath    = "path"    // a filesystem path; x-mcp-operation names the access (default read)
	FormatURI     = "uri"     // a URL the tool will fetch
	FormatCommand = "command" // an executable the tool will run
)

// OperationKeyword names the filesystem operation of a format: path value.
const OperationKeyword = "x-mcp-operation"

// annotation is one marked value in a call's arguments.
type annotation struct {
	format  string
	op      plugin.Op
	pointer string
	value   string
}

const maxSchemaDepth = 64

// collectAnnotations walks schema and the argument value together and
// returns every string value whose schema carries a checked format, at any
// depth: properties, additionalProperties, patternProperties, items,
// prefixItems, allOf/anyOf/oneOf and local $refs.
func collectAnnotations(root map[string]any, value any) []annotation {
	var out []annotation
	var walk func(schema any, v any, ptr string, depth int)
	walk = func(schema any, v any, ptr string, depth int) {
		s, ok := schema.(map[string]any)
		if !ok || depth > maxSchemaDepth {
			return
		}
		if ref, ok := s["$ref"].(string); ok {
			walk(resolveRef(root, ref), v, ptr, depth+1)
		}
		for _, k := range []string{"allOf", "anyOf", "oneOf"} {
			if subs, ok := s[k].([]any); ok {
				for _, sub := range subs {
					walk(sub, v, ptr, depth+1)
				}
			}
		}
		if f, ok := s["format"].(string); ok && (f == FormatPath || f == FormatURI || f == FormatCommand) {
			if str, ok := v.(string); ok {
				op := plugin.OpRead
				if o, ok := s[OperationKeyword].(string); ok && o != "" {
					op = plugin.Op(o)
				}
				out = append(out, annotation{format: f, op: op, pointer: ptr, value: str})
			}
		}
		switch x := v.(type) {
		case map[string]any:
			props, _ := s["properties"].(map[string]any)
			patterns, _ := s["patternProperties"].(map[string]any)
			for key, val := range x {
				p := ptr + "/" + escapePointer(key)
				matched := false
				// Handlers decoding with encoding/json match field names
				// case-insensitively: "PATH" may reach the field of "path",
				// so it is checked against that property too.
				for name, sub := range props {
					if strings.EqualFold(name, key) {
						walk(sub, val, p, depth+1)
						matched = true
					}
				}
				for pat, sub := range patterns {
					if re, err := regexp.Compile(pat); err == nil && re.MatchString(key) {
						walk(sub, val, p, depth+1)
						matched = true
					}
				}
				if !matched {
					walk(s["additionalProperties"], val, p, depth+1)
				}
			}
		case []any:
			prefix, _ := s["prefixItems"].([]any)
			for i, val := range x {
				p := fmt.Sprintf("%s/%d", ptr, i)
				if i < len(prefix) {
					walk(prefix[i], val, p, depth+1)
				} else {
					walk(s["items"], val, p, depth+1)
				}
			}
		}
	}
	walk(root, value, "", 0)
	return out
}

// hasFormats reports whether a schema mentions any checked format, so
// calls of tools without them skip the walk.
func hasFormats(doc any) bool {
	switch x := doc.(type) {
	case map[string]any:
		if f, ok := x["format"].(string); ok && (f == FormatPath || f == FormatURI || f == FormatCommand) {
			return true
		}
		for _, v := range x {
			if hasFormats(v) {
				return true
			}
		}
	case []any:
		for _, v := range x {
			if hasFormats(v) {
				return true
			}
		}
	}
	return false
}

func resolveRef(root map[string]any, ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = root
	for tok := range strings.SplitSeq(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// The guards' pre-checks, as the pipeline uses them.
type (
	pathChecker interface {
		Check(ctx context.Context, path string, op plugin.Op) error
	}
	urlChecker interface {
		CheckURL(ctx context.Context, rawURL string) error
	}
	commandChecker interface {
		Check(ctx context.Context, argv []string, dir string) (guard.Resolved, error)
	}
)

// checkAnnotations decides every marked value; the first denial stops the
// call. Each decision is audited by its guard.
func (p *pipeline) checkAnnotations(ctx context.Context, anns []annotation) error {
	for _, a := range anns {
		var err error
		switch a.format {
		case FormatPath:
			if !strings.HasPrefix(a.value, "/") {
				err = &plugin.DeniedError{Kind: audit.KindFilesystem, Target: fmt.Sprintf("argument %s %q", a.pointer, a.value),
					Reasons: []string{"a path argument must be absolute"}}
			} else if p.paths == nil {
				err = &plugin.DeniedError{Kind: audit.KindFilesystem, Target: a.value, Reasons: []string{"this server has no filesystem guard"}}
			} else {
				err = p.paths.Check(ctx, a.value, a.op)
			}
		case FormatURI:
			if p.urls == nil {
				err = &plugin.DeniedError{Kind: audit.KindNetwork, Target: a.value, Reasons: []string{"this server has no network guard"}}
			} else {
				err = p.urls.CheckURL(ctx, a.value)
			}
		case FormatCommand:
			if p.commands == nil {
				err = &plugin.DeniedError{Kind: audit.KindCommand, Target: a.value, Reasons: []string{"this server has no command guard"}}
			} else {
				_, err = p.commands.Check(ctx, []string{a.value}, "")
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
