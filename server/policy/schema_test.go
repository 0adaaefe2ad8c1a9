package policy

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
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
	for key := range schemaNotes {
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
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
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
	for name, src := range map[string]string{
		"bad/unknown-top-key":  "netwrok: {}\n",
		"bad/unknown-nested":   "network:\n  alowed_ranges: []\n",
		"bad/port-string":      "network:\n  blocked_ports: [ssh]\n",
		"bad/port-zero":        "network:\n  blocked_ports: [0]\n",
		"bad/endpoint-port":    "network:\n  allowed_endpoints:\n    - host: a.b\n      port: 443\n",
		"bad/endpoint-noports": "network:\n  allowed_endpoints:\n    - host: a.b\n      ports: []\n",
		"bad/level":            "audit:\n  log_level: LOUD\n",
		"bad/include":          "audit:\n  include: [everything]\n",
		"bad/durability":       "audit:\n  durability: sometimes\n",
		"bad/version":          "version: \"2.0\"\n",
		"bad/rate-negative":    "tools:\n  rate_limits:\n    default: -1\n",
		"bad/timeout-string":   "tools:\n  timeout: soon\n",
		"bad/relative-glob":    "filesystem:\n  allowed_paths: [secrets/]\n",
		"bad/bare-ip":          "network:\n  allowed_ranges: [10.0.0.1]\n",
		"bad/plugin-number":    "plugins:\n  bugtracker:\n    synchronous: 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(yamlDoc(t, src)); err == nil {
				t.Errorf("schema accepts %q", strings.TrimSpace(src))
			}
			if _, err := Parse("p.yaml", t.TempDir(), []byte(src), env(map[string]string{"HOME": "/home/ann"})); err == nil {
				t.Errorf("loading accepts %q, the schema does not", strings.TrimSpace(src))
			}
		})
	}
}
