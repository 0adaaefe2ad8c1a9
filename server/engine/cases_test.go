package engine_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"go.yaml.in/yaml/v3"

	"github.com/mcp-secure/mcp-secure/rego"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// builtinConfig is the engine configuration of the binary: the embedded
// modules and capabilities, with data.
func builtinConfig(t testing.TB, data map[string]any, extra map[string]string) engine.Config {
	t.Helper()
	mods, err := rego.Modules()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		mods[k] = v
	}
	caps, err := ast.LoadCapabilitiesJSON(bytes.NewReader(rego.Capabilities()))
	if err != nil {
		t.Fatal(err)
	}
	return engine.Config{Modules: mods, Data: data, Capabilities: caps}
}

type decisionCase struct {
	Name    string         `yaml:"name"`
	Policy  map[string]any `yaml:"policy"`
	Input   map[string]any `yaml:"input"`
	Allow   bool           `yaml:"allow"`
	Reasons []string       `yaml:"reasons"`
}

// TestDecisionCases runs every case under policy-tests/decisions through
// the prepared queries the server uses. The same cases run in `opa test`
// (policy-tests/mcp/decisions_test.rego).
func TestDecisionCases(t *testing.T) {
	for _, p := range engine.Points {
		data, err := os.ReadFile(filepath.Join("../../policy-tests/decisions", string(p)+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var suite map[string][]decisionCase
		if err := yaml.Unmarshal(data, &suite); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		cases := suite[string(p)]
		if len(cases) < 6 {
			t.Errorf("%s: %d decision cases, want at least 6", p, len(cases))
		}
		for _, c := range cases {
			t.Run(string(p)+"/"+c.Name, func(t *testing.T) {
				e, err := engine.New(t.Context(), builtinConfig(t, c.Policy, nil))
				if err != nil {
					t.Fatal(err)
				}
				in, err := ast.InterfaceToValue(c.Input)
				if err != nil {
					t.Fatal(err)
				}
				d, err := e.Decide(t.Context(), p, in)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allow != c.Allow {
					t.Errorf("allow = %v, want %v (reasons %q)", d.Allow, c.Allow, d.Reasons)
				}
				if c.Reasons != nil && !slices.Equal(d.Reasons, c.Reasons) {
					t.Errorf("reasons = %q, want %q", d.Reasons, c.Reasons)
				}
			})
		}
	}
}

// TestRegoUnitTests runs the _test.rego files with OPA's test runner, the
// same tests `opa test rego policy-tests` runs.
func TestRegoUnitTests(t *testing.T) {
	results, err := tester.Run(t.Context(), "../../rego", "../../policy-tests", "../../examples/rego")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 20 {
		t.Fatalf("only %d Rego tests ran", len(results))
	}
	for _, r := range results {
		if !r.Pass() {
			t.Errorf("%s.%s: %s", r.Package, r.Name, r.String())
		}
	}
}
