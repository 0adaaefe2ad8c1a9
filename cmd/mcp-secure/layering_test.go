package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the package map honest: plugins reach the server only
// through server/plugin, the server never imports a plugin, and nothing
// but the transport writes to stdout (no plugin imports the SDK).
func TestLayering(t *testing.T) {
	const mod = "github.com/mcp-secure/mcp-secure/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(fields[0], mod), fields[1:]
		for _, imp := range imports {
			dep, internal := strings.CutPrefix(imp, mod)
			switch {
			case strings.HasPrefix(pkg, "plugins/"):
				checked++
				if internal && strings.HasPrefix(dep, "server/") && dep != "server/plugin" {
					t.Errorf("%s imports %s: plugins may import only server/plugin", pkg, dep)
				}
				if strings.HasPrefix(imp, "github.com/modelcontextprotocol/") || strings.HasPrefix(imp, "github.com/open-policy-agent/") {
					t.Errorf("%s imports %s: plugins speak to the server only through server/plugin", pkg, imp)
				}
				if imp == "net" || imp == "net/http" || imp == "os/exec" {
					t.Errorf("%s imports %s: plugins reach the world only through the Host's guards", pkg, imp)
				}
			case strings.HasPrefix(pkg, "server"):
				checked++
				if internal && strings.HasPrefix(dep, "plugins/") {
					t.Errorf("%s imports %s: the server never imports a plugin", pkg, dep)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no imports checked; is the module layout intact?")
	}
}
