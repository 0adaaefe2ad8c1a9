package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/policy"
)

// The example upstream's manifest is a type mcp plugin; a servers: entry
// or another manifest with its name or prefix is refused, naming the
// manifest.
func TestMCPPlugins(t *testing.T) {
	example, err := filepath.Abs("../../examples/plugins/upstream-ts")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		servers string
		want    string // "" means served
	}{
		"ok/example":       {"", ""},
		"fail/server-name": {"servers:\n  demo:\n    command: node\n    prefix: other__\n", `name "demo" is also the name of servers.demo`},
		"fail/prefix":      {"servers:\n  files:\n    command: node\n    prefix: demo__\n", `tool prefix "demo__" overlaps the prefix of servers.files`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "policy.yaml")
			yaml := "version: \"1.0\"\nplugins:\n  external: [\"" + example + "\"]\n" + c.servers
			if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			pol, err := policy.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			ps, errs := mcpPlugins(pol, nil)
			if c.want == "" {
				if len(errs) > 0 || len(ps) != 1 || ps[0].prefix != "demo__" || ps[0].spec.Path != "node" || !ps[0].spec.LongLived {
					t.Fatalf("mcpPlugins = %+v, %v", ps, errs)
				}
				return
			}
			if len(ps) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) || !strings.Contains(errs[0].Error(), filepath.Join(example, "manifest.yaml")) {
				t.Fatalf("mcpPlugins = %+v, %v; want an error naming the manifest and saying %q", ps, errs, c.want)
			}
		})
	}
}
