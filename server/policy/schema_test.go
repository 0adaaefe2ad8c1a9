package policy

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mcp-secure/mcp-secure/server/jsonschema"
)

var update = flag.Bool("update", false, "rewrite policy.schema.json from the Go types")

// schemaFile is the committed schema, at the root of the repository.
const schemaFile = "../../policy.schema.json"

// TestSchemaFile fails when the committed schema drifts from the Go
// types: run `go generate ./server/policy` to rewrite it.
func TestSchemaFile(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("policy.schema.json is out of date with the Go types: run `go generate ./server/policy`")
	}
}

func TestSchemaNotesNameRealKeys(t *testing.T) {
	seen := map[string]bool{}
	schemaOf(reflect.TypeFor[Policy](), "", seen)
	for key := range schemaNotes() {
		if !seen[key] {
			t.Errorf("schemaNotes has %q, which the policy types do not", key)
		}
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	s, err := jsonschema.Compile(raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func yamlDoc(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The policies that load pass the schema, and the mistakes loading
// refuses that a schema can see fail it.
func TestSchemaAgreesWithLoading(t *testing.T) {
	s := compileSchema(t)
	ref, err := os.ReadFile("testdata/reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{
		"ok/default":        string(defaultYAML),
		"ok/reference":      string(ref),
		"ok/empty-sections": "network:\nfilesystem:\ncommands:\n  allowed:\ntools:\naudit:\n",
		"ok/plugins":        "plugins:\n  bugtracker:\n    database: /tmp/x.db\n    synchronous: full\n",
		"ok/rego":           "rego:\n  modules: [rules/extra.rego]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(yamlDoc(t, src)); err != nil {
				t.Errorf("schema refuses a valid policy: %v", err)
			}
		})
	}
	// The schema's error names the key (a JSON pointer) and the keyword,
	// as an editor shows it next to the line.
	for name, tc := range map[string]struct{ src, want string }{
		"bad/unknown-top-key":  {"netwrok: {}\n", `at "/": additional properties "netwrok" not allowed (keyword "additionalProperties")`},
		"bad/unknown-nested":   {"network:\n  alowed_ranges: []\n", `at "/network": additional properties "alowed_ranges" not allowed (keyword "additionalProperties")`},
		"bad/port-string":      {"network:\n  blocked_ports: [ssh]\n", `at "/network/blocked_ports/0": got string, want integer (keyword "type")`},
		"bad/port-zero":        {"network:\n  blocked_ports: [0]\n", `at "/network/blocked_ports/0": must be >= 1 (keyword "minimum")`},
		"bad/endpoint-port":    {"network:\n  allowed_endpoints:\n    - host: a.b\n      port: 443\n", `at "/network/allowed_endpoints/0": additional properties "port" not allowed (keyword "additionalProperties")`},
		"bad/endpoint-noports": {"network:\n  allowed_endpoints:\n    - host: a.b\n      ports: []\n", `at "/network/allowed_endpoints/0/ports": must have at least 1 items, but has 0 (keyword "minItems")`},
		"bad/level":            {"audit:\n  log_level: LOUD\n", `at "/audit/log_level": value must be one of "INFO", "DEBUG", "info", "debug", "Info", "Debug" (keyword "enum")`},
		"bad/include":          {"audit:\n  include: [everything]\n", `at "/audit/include/0": value must be one of`},
		"bad/durability":       {"audit:\n  durability: sometimes\n", `at "/audit/durability": value must be one of "none", "fsync" (keyword "enum")`},
		"bad/version":          {"version: \"2.0\"\n", `at "/version": value must be one of "1.0", "1" (keyword "enum")`},
		"bad/rate-negative":    {"tools:\n  rate_limits:\n    default: -1\n", `at "/tools/rate_limits/default": must be >= 0 (keyword "minimum")`},
		"bad/timeout-string":   {"tools:\n  timeout: soon\n", `at "/tools/timeout": got string, want number (keyword "type")`},
		"bad/relative-glob":    {"filesystem:\n  allowed_paths: [secrets/]\n", `at "/filesystem/allowed_paths/0": does not match pattern`},
		"bad/bare-ip":          {"network:\n  allowed_ranges: [10.0.0.1]\n", `at "/network/allowed_ranges/0": does not match pattern`},
		"bad/plugin-number":    {"plugins:\n  bugtracker:\n    synchronous: 1\n", `at "/plugins/bugtracker/synchronous": got integer, want string (keyword "type")`},
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Validate(yamlDoc(t, tc.src))
			if err == nil {
				t.Errorf("schema accepts %q", strings.TrimSpace(tc.src))
			} else if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("schema error = %v\nwant it to start %s", err, tc.want)
			}
			if _, err := Parse("p.yaml", t.TempDir(), []byte(tc.src), env(map[string]string{"HOME": "/home/ann"})); err == nil {
				t.Errorf("loading accepts %q, the schema does not", strings.TrimSpace(tc.src))
			}
		})
	}
}
