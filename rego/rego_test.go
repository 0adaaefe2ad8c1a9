package rego

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestCapabilities(t *testing.T) {
	caps, err := ast.LoadCapabilitiesJSON(bytes.NewReader(Capabilities()))
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, b := range caps.Builtins {
		have = append(have, b.Name)
	}
	// Written out here, not read from Forbidden: a change to that list
	// must not quietly let a network or runtime built-in back in.
	for _, f := range []string{"http.send", "net.lookup_ip_addr", "opa.runtime", "trace", "print"} {
		if slices.Contains(have, f) {
			t.Errorf("capabilities.json allows %s", f)
		}
		if !slices.Contains(Forbidden, f) {
			t.Errorf("rego.Forbidden no longer lists %s", f)
		}
	}
	// Whatever OPA adds later that reaches outside the process is out too.
	for _, name := range have {
		if strings.HasPrefix(name, "http.") || strings.HasPrefix(name, "net.lookup") {
			t.Errorf("capabilities.json allows %s, which reaches the network", name)
		}
	}
	// The file is this OPA version's built-ins minus the forbidden ones:
	// when OPA is upgraded, regenerate it (see the Makefile's caps target).
	var want []string
	for _, b := range ast.CapabilitiesForThisVersion().Builtins {
		if !slices.Contains(Forbidden, b.Name) {
			want = append(want, b.Name)
		}
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		t.Errorf("capabilities.json is stale: regenerate it with `make caps`")
	}
}

func TestModulesExcludeTests(t *testing.T) {
	mods, err := Modules()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tools", "network", "filesystem", "commands"} {
		name := "rego/mcp/" + p + "/" + p + ".rego"
		src, ok := mods[name]
		if !ok || !strings.Contains(src, "package mcp."+p) {
			t.Errorf("module %s missing or wrong", name)
		}
	}
	for name := range mods {
		if strings.HasSuffix(name, "_test.rego") {
			t.Errorf("test module %s is compiled into the server", name)
		}
	}
}

// The capabilities the server compiles against are the checked-in file
// that CI's opa check uses: the same built-ins with the same
// declarations, and the same features, keywords and network allowances.
// (The in-memory built-ins also carry descriptions, which the file
// leaves out and which do not change what compiles.)
func TestRestrictedMatchesFile(t *testing.T) {
	file, err := ast.LoadCapabilitiesJSON(bytes.NewReader(Capabilities()))
	if err != nil {
		t.Fatal(err)
	}
	got := Restricted()
	type shape struct {
		Name, Infix                  string
		Decl                         string
		Relation, Nondet, Deprecated bool
	}
	project := func(c *ast.Capabilities) (out []shape) {
		for _, b := range c.Builtins {
			// The declaration as a type, without its documentation.
			decl := fmt.Sprint(b.Decl)
			out = append(out, shape{b.Name, b.Infix, decl, b.Relation, b.Nondeterministic, b.Deprecated})
		}
		return out
	}
	if !slices.Equal(project(file), project(got)) {
		t.Errorf("rego.Restricted() has other built-ins than capabilities.json: regenerate it with `make caps`")
	}
	rest := func(c *ast.Capabilities) string {
		cp := *c
		cp.Builtins = nil
		b, _ := json.Marshal(cp)
		return string(b)
	}
	if rest(file) != rest(got) {
		t.Errorf("rego.Restricted() differs from capabilities.json outside the built-ins:\n%s\n%s", rest(file), rest(got))
	}
}
