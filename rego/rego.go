// Package rego embeds the built-in policy modules and the capabilities
// file that restricts the built-ins every module, built-in or user, may
// call.
//
// # Layout
//
// The directory mirrors the package: mcp/tools/tools.rego is package
// mcp.tools. Each module has its unit tests beside it (x_test.rego, run by
// `go tool opa test rego policy-tests`); test files are not compiled
// into the server.
package rego

import (
	"embed"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

//go:embed mcp capabilities.json
var files embed.FS

// Modules returns the built-in modules by file name (rego/mcp/...), tests
// excluded.
func Modules() (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(files, "mcp", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		src, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		out["rego/"+p] = string(src)
		return nil
	})
	return out, err
}

// Capabilities returns rego/capabilities.json: OPA's built-ins without
// those that reach the network or the runtime.
func Capabilities() []byte {
	b, err := files.ReadFile("capabilities.json")
	if err != nil {
		panic("rego: capabilities.json is not embedded: " + err.Error())
	}
	return b
}

// Restricted returns the capabilities every module is compiled against:
// this OPA's own, without the Forbidden built-ins. It is what
// capabilities.json holds (a test keeps them equal), built without
// parsing the 140 KB file, which costs some 30 ms at every start.
func Restricted() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	kept := c.Builtins[:0]
	for _, b := range c.Builtins {
		if !slices.Contains(Forbidden, b.Name) {
			kept = append(kept, b)
		}
	}
	c.Builtins = kept
	return c
}

// Forbidden lists the built-ins capabilities.json must not contain.
var Forbidden = []string{"http.send", "net.lookup_ip_addr", "opa.runtime", "trace", "print"}
