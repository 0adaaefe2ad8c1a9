package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

//go:generate go test -run TestSchemaFile -update .

// SchemaID is the $id of the policy's JSON Schema: the file committed at
// the root of the repository.
const SchemaID = "https://github.com/mcp-secure/mcp-secure/raw/main/policy.schema.json"

// schemaNotes add to what the Go types say: a description, and the
// bounds and values validation enforces, by dotted key path ([] stands
// for any list element, * for any map key). They are built on first use:
// only the schema's generation reads them, never a server's start.
var schemaNotes = sync.OnceValue(func() map[string]map[string]any {
	return map[string]map[string]any{
		"":        {"title": "mcp-secure policy", "description": "The YAML security policy of mcp-secure: network, filesystem, commands, tools, audit, your own Rego and plugin settings. A section left out gets its safe default (nothing opened)."},
		"version": {"description": "Policy format version.", "enum": []any{"1.0", "1"}},

		"network":                                 {"description": "Every connection a tool makes is decided at dial time on the address actually connected."},
		"network.allowed_ranges":                  {"description": "CIDRs an IP literal (and a resolved address in a private or special range) must lie in, e.g. 10.0.0.0/8 or 192.0.2.7/32."},
		"network.allowed_ranges[]":                {"pattern": `^\s*[0-9A-Fa-f:.]+/[0-9]{1,3}\s*$`},
		"network.allowed_endpoints":               {"description": "Hosts (case-insensitive) and the ports they may be reached on."},
		"network.allowed_endpoints[].host":        {"description": "Host name; the addresses it resolves to are checked again."},
		"network.allowed_endpoints[].ports":       {"minItems": 1},
		"network.allowed_endpoints[].ports[]":     {"minimum": 1, "maximum": 65535},
		"network.allowed_endpoints[].description": {"description": "Free text for people reading the policy."},
		"network.blocked_ports":                   {"description": "Ports always denied."},
		"network.blocked_ports[]":                 {"minimum": 1, "maximum": 65535},
		"network.allow_dns":                       {"description": "Names resolve only if this is true and the name is in dns_allowlist or is an endpoint."},
		"network.dns_allowlist":                   {"description": "Host names that may be resolved."},

		"filesystem":                 {"description": "Path globs: * stays within one segment, ** crosses; a trailing / means the directory and everything below; deny wins."},
		"filesystem.allowed_paths":   {"description": "Absolute globs (${VAR} and ~ expand), or **/... for any directory. Empty allows nothing."},
		"filesystem.denied_paths":    {"description": "Globs that are denied whatever allowed_paths says; case-insensitive."},
		"filesystem.allowed_paths[]": {"pattern": `^\s*(/|~|\$\{|\*\*(/|$))`},
		"filesystem.denied_paths[]":  {"pattern": `^\s*(/|~|\$\{|\*\*(/|$))`},

		"commands":            {"description": "Commands run as argv, never through a shell, in a sandbox."},
		"commands.blocked":    {"description": "Names (case-insensitive, also after symlinks) or absolute paths that never run."},
		"commands.allowed":    {"description": "If present, only these run: bare names in the system directories, absolute paths as that file. An empty list runs nothing."},
		"commands.unconfined": {"description": "Run commands without Landlock where the kernel lacks it (else they are refused)."},

		"tools":               {"description": "Which tools may be called, how often and for how long."},
		"tools.rate_limits":   {"description": "Requests per minute per tool name; \"default\" for the others; 0 blocks the tool."},
		"tools.rate_limits.*": {"minimum": 0},
		"tools.timeout":       {"description": "Seconds per call.", "minimum": 0, "maximum": 3600},
		"tools.allowed":       {"description": "Tool name globs; absent means every tool."},
		"tools.denied":        {"description": "Tool name globs; deny wins."},

		"audit":            {"description": "The audit log: one hash-chained JSON Lines record per decision."},
		"audit.log_file":   {"description": "Path of the log (relative to the policy file); default $XDG_STATE_HOME/mcp-secure/audit.log."},
		"audit.log_level":  {"description": "INFO, or DEBUG (debug lines on stderr too).", "enum": []any{"INFO", "DEBUG", "info", "debug", "Info", "Debug"}},
		"audit.include":    {"description": "Fields recorded; arguments, request_id and execution_time may be left out, the rest may not."},
		"audit.include[]":  {"enum": []any{"timestamp", "request_id", "tool_name", "arguments", "result_status", "execution_time", "security_events"}},
		"audit.max_size":   {"description": "Rotate before the log would pass this size: \"10MB\", \"512KiB\" or a byte count; at least 128KiB; absent or \"0\" never rotates.", "pattern": `^\s*[0-9]{1,15}\s*([KkMmGg](i?[Bb])?|[Bb])?\s*$`},
		"audit.retention":  {"description": "Rotated files kept (default 5).", "minimum": 0, "maximum": 1000},
		"audit.durability": {"description": "fsync: sync every record; none (default): records reach the OS on every call.", "enum": []any{"none", "fsync"}},

		"rego":           {"description": "Your own Rego modules: they may only tighten (add to deny)."},
		"rego.modules":   {"description": "Rego files, relative to the policy file."},
		"rego.modules[]": {"pattern": `\.rego$`},

		"plugins": {"description": "Plugin settings: plugins.<name>.<key>: value (a string; ${VAR} expands)."},
	}
})

// Schema returns the JSON Schema (draft 2020-12) of the policy file,
// built from the Go types that load it, so the two cannot drift: editors
// use it to complete and check a policy as it is written. Loading stays
// the authority (it also checks what a schema cannot: CIDRs, host names,
// files that exist).
func Schema() ([]byte, error) {
	root := schemaOf(reflect.TypeFor[Policy](), "", nil)
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("policy schema: %w", err)
	}
	return buf.Bytes(), nil
}

// schemaOf describes t, found at key. A key written with no value is an
// empty section, list or map, so those also take null.
// seen, if not nil, collects the keys visited.
func schemaOf(t reflect.Type, key string, seen map[string]bool) map[string]any {
	if seen != nil {
		seen[key] = true
	}
	s := map[string]any{}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		props := map[string]any{}
		for i := range t.NumField() {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			props[name] = schemaOf(f.Type, join(key, name), seen)
		}
		s["type"] = nullable(key, "object")
		s["properties"] = props
		s["additionalProperties"] = false
	case reflect.Slice:
		s["type"] = []any{"array", "null"}
		s["items"] = schemaOf(t.Elem(), key+"[]", seen)
	case reflect.Map:
		s["type"] = []any{"object", "null"}
		s["additionalProperties"] = schemaOf(t.Elem(), join(key, "*"), seen)
	case reflect.String:
		s["type"] = "string"
	case reflect.Bool:
		s["type"] = "boolean"
	case reflect.Int:
		s["type"] = "integer"
	case reflect.Float64:
		s["type"] = "number"
	default:
		panic(fmt.Sprintf("policy schema: no JSON type for %s at %q", t, key))
	}
	for k, v := range schemaNotes()[key] {
		s[k] = v
	}
	return s
}

func nullable(key, typ string) any {
	if key == "" {
		return typ
	}
	return []any{typ, "null"}
}
