package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
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
				switch imp {
				case "net", "os/exec", "syscall", "golang.org/x/sys/unix", "net/http/httptrace":
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

// forbiddenHTTP are net/http identifiers that dial on their own. Plugins
// may use the *http.Client the Host gives them, nothing that makes one.
var forbiddenHTTP = map[string]bool{
	"Get": true, "Head": true, "Post": true, "PostForm": true,
	"DefaultClient": true, "DefaultTransport": true, "Transport": true,
	"ProxyFromEnvironment": true, "ProxyURL": true,
}

// TestPluginsDoNotDial scans plugin sources: net/http is allowed for its
// types, but not for a client or transport of the plugin's own.
func TestPluginsDoNotDial(t *testing.T) {
	files, err := filepath.Glob("../../plugins/*/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no plugin sources found: %v", err)
	}
	fset := token.NewFileSet()
	scanned := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		httpName := ""
		for _, imp := range file.Imports {
			if imp.Path.Value == `"net/http"` {
				httpName = "http"
				if imp.Name != nil {
					httpName = imp.Name.Name
				}
			}
		}
		scanned++
		if httpName == "" {
			continue
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && id.Name == httpName && forbiddenHTTP[x.Sel.Name] {
					t.Errorf("%s: uses http.%s: plugins dial only through the Host's network", fset.Position(x.Pos()), x.Sel.Name)
				}
			case *ast.CompositeLit:
				if sel, ok := x.Type.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == httpName && sel.Sel.Name == "Client" {
						t.Errorf("%s: builds an http.Client: use the Host's", fset.Position(x.Pos()))
					}
				}
			}
			return true
		})
	}
	if scanned == 0 {
		t.Fatal("no plugin sources scanned")
	}
}
