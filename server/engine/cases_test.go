package engine_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

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
	Name    string         `json:"name"`
	Point   string         `json:"point"`
	Policy  map[string]any `json:"policy"`
	Input   map[string]any `json:"input"`
	Allow   bool           `json:"allow"`
	Reasons []string       `json:"reasons"`
}

// TestDecisionCases runs every case under policy-tests/decisions through
// the prepared queries the server uses.
func TestDecisionCases(t *testing.T) {
	files, err := filepath.Glob("../../policy-tests/decisions/*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 24 {
		t.Fatalf("found %d decision cases, want at least 24 (6 per decision point)", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c decisionCase
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		t.Run(c.Point+"/"+c.Name, func(t *testing.T) {
			e, err := engine.New(t.Context(), builtinConfig(t, c.Policy, nil))
			if err != nil {
				t.Fatal(err)
			}
			in, err := ast.InterfaceToValue(c.Input)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(t.Context(), engine.Point(c.Point), in)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if d.Allow != c.Allow {
				t.Errorf("%s: allow = %v, want %v (reasons %q)", f, d.Allow, c.Allow, d.Reasons)
			}
			if !c.Allow && c.Reasons != nil && !slices.Equal(d.Reasons, c.Reasons) {
				t.Errorf("%s: reasons = %q, want %q", f, d.Reasons, c.Reasons)
			}
		})
	}
}

// TestRegoUnitTests runs the _test.rego files with OPA's test runner, the
// same tests `opa test rego policy-tests` runs.
func TestRegoUnitTests(t *testing.T) {
	results, err := tester.Run(t.Context(), "../../rego", "../../policy-tests/mcp", "../../examples/rego")
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
