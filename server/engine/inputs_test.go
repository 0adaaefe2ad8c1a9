package engine_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/rego"
	"github.com/mcp-secure/mcp-secure/server/engine"
)

// Every key of every input document is named in the METADATA block of its
// package, so the documented input and the built one cannot drift apart.
func TestInputsMatchTheirDocumentation(t *testing.T) {
	mods, err := rego.Modules()
	if err != nil {
		t.Fatal(err)
	}
	prog := engine.Program{Executable: "/usr/bin/cat", Real: "/usr/bin/cat"}
	for _, tc := range []struct {
		point engine.Point
		value ast.Value
		want  []string
	}{
		{engine.Tools, engine.ToolInput{Tool: "t"}.Value(),
			[]string{"arguments", "client", "protocol_version", "registered", "request_id", "session", "tool", "tool_definition"}},
		{engine.Network, engine.NetworkInput{Phase: "dial"}.Value(),
			[]string{"embedded_ipv4", "host", "ip", "network", "phase", "port", "tool"}},
		{engine.Filesystem, engine.FileInput{Path: "/p"}.Value(),
			[]string{"operation", "path", "request_id", "tool"}},
		{engine.Commands, engine.CommandInput{Argv: []string{"cat"}, Program: prog, Interpreters: []engine.Program{prog}}.Value(),
			[]string{"argv", "cwd", "dev", "executable", "inode", "interpreters", "name", "real", "request_id", "resolved_name", "same_file_as", "tool", "trampoline", "untrusted"}},
	} {
		t.Run(string(tc.point), func(t *testing.T) {
			obj := tc.value.(ast.Object)
			var keys []string
			for _, k := range obj.Keys() {
				keys = append(keys, string(k.Value.(ast.String)))
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.want) {
				t.Errorf("keys = %v, want %v", keys, tc.want)
			}
			src := mods["rego/mcp/"+string(tc.point)+"/"+string(tc.point)+".rego"]
			meta, _, _ := strings.Cut(src, "\npackage ")
			for _, k := range keys {
				if !strings.Contains(meta, k) {
					t.Errorf("%s is not documented in the METADATA of package mcp.%s", k, tc.point)
				}
			}
		})
	}
}
