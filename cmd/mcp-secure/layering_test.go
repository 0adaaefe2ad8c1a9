package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layerRules are what a package may not depend on, directly or through
// others (go list -deps), each with its reason. from and dep are import
// path prefixes relative to the module, or full paths outside it.
var layerRules = []struct {
	from, dep, why string
	except         []string // deps allowed although dep matches them
	exempt         []string // packages under from the rule does not bind
}{
	{"plugins/", "server/", "plugins reach the server only through server/plugin", []string{"server/plugin", "server/jsonschema"}, nil},
	// plugins/upstream speaks MCP to its own child, as a client, over the
	// pipes the sandbox launcher (wired in cmd) gives it: never to stdout.
	{"plugins/", "github.com/modelcontextprotocol/", "plugins speak to clients only through the server (nothing but the transport writes to stdout)", nil, []string{"plugins/upstream"}},
	{"plugins/", "github.com/open-policy-agent/", "plugins never decide: the server asks the policy for them", nil, nil},
	{"server/", "plugins/", "the server never imports a plugin; cmd wires them together", nil, nil},
	{"server/plugin", "server/", "the plugin contract depends on nothing of the server", []string{"server/plugin", "server/jsonschema"}, nil},
	{"server/plugin", "github.com/open-policy-agent/", "the plugin contract does not expose the policy engine", nil, nil},
	{"server/plugin", "github.com/modelcontextprotocol/", "the plugin contract does not expose the SDK", nil, nil},
	{"server/guard", "server/policy", "the doors decide through the engine, never by reading the YAML loader", nil, nil},
	{"server/engine", "server/", "the engine knows OPA, not the rest of the server", []string{"server/engine"}, nil},
	{"server/audit", "server/", "the audit log depends on no other part of the server (masks come through an interface)", []string{"server/audit"}, nil},
	{"server/audit", "github.com/open-policy-agent/", "the audit log does not evaluate policy itself", nil, nil},
	{"server/sandbox", "server/", "the sandbox launcher runs before anything else in a child: it stays small", []string{"server/sandbox"}, nil},
	{"server/sandbox", "github.com/open-policy-agent/", "the sandbox launcher stays small", nil, nil},
	{"server/hostname", "server/", "host-name spelling is a leaf", []string{"server/hostname"}, nil},
	{"server/jsonschema", "server/", "the schema validator is a leaf (the plugin contract exposes its Schema)", []string{"server/jsonschema"}, nil},
	{"server/policy", "server/guard", "the loader is data, not a door", nil, nil},
	// server/bundle uses OPA's REST client and bundle downloader, which
	// link the SDK for OPA's own distributed tracing (off unless configured).
	{"server/", "go.opentelemetry.io/otel/sdk", "only server/telemetry imports the OpenTelemetry SDK; the rest speaks the API", nil, []string{"server/telemetry", "server/bundle"}},
	{"server/", "go.opentelemetry.io/otel/exporters/", "only server/telemetry imports the OpenTelemetry exporters", nil, []string{"server/telemetry", "server/bundle"}},
	{"plugins/", "go.opentelemetry.io/otel/sdk", "only server/telemetry imports the OpenTelemetry SDK", nil, nil},
	{"server/", "server/telemetry", "the server speaks the OpenTelemetry API; cmd wires the SDK in", nil, []string{"server/telemetry"}},
	{"server/telemetry", "server/", "telemetry sees records, not the rest of the server", []string{"server/audit", "server/telemetry", "server/internal/cowmap"}, nil},
}

// TestLayering keeps the package map honest: every package's whole
// dependency graph is checked against layerRules, and plugins import no
// package that reaches the world on its own.
func TestLayering(t *testing.T) {
	const mod = "github.com/mcp-secure/mcp-secure/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Deps \" \"}}|{{join .Imports \" \"}}", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	rel := func(path string) string {
		if r, ok := strings.CutPrefix(path, mod); ok {
			return r
		}
		return path
	}
	checked := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, "|")
		if len(parts) != 3 {
			t.Fatalf("go list line %q", line)
		}
		pkg := rel(parts[0])
		var deps []string
		for _, d := range strings.Fields(parts[1]) {
			deps = append(deps, rel(d))
		}
		for _, v := range layerViolations(pkg, deps) {
			checked++
			t.Error(v)
		}
		if strings.HasPrefix(pkg, "plugins/") {
			checked++
			for _, imp := range strings.Fields(parts[2]) {
				switch imp {
				case "net", "os/exec", "syscall", "golang.org/x/sys/unix", "net/http/httptrace":
					t.Errorf("%s imports %s: plugins reach the world only through the Host's guards", pkg, imp)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package checked; is the module layout intact?")
	}
}

// layerViolations applies layerRules to pkg's dependencies (module paths
// relative to the module).
func layerViolations(pkg string, deps []string) []string {
	var out []string
	for _, dep := range deps {
		for _, r := range layerRules {
			if strings.HasPrefix(pkg, r.from) && strings.HasPrefix(dep, r.dep) && !slices.Contains(r.except, dep) && !slices.Contains(r.exempt, pkg) {
				out = append(out, fmt.Sprintf("%s depends on %s: %s", pkg, dep, r.why))
			}
		}
	}
	return out
}

// TestLayeringRulesBite: each rule catches the dependency it names on a
// graph made up for the purpose, so no rule can silently match nothing.
func TestLayeringRulesBite(t *testing.T) {
	for _, r := range layerRules {
		dep := r.dep
		if strings.HasSuffix(dep, "/") {
			dep += "forbidden"
		}
		if got := layerViolations(r.from+"/pkg", []string{dep}); len(got) == 0 {
			t.Errorf("rule %s -/-> %s does not fire", r.from, r.dep)
		}
		for _, pkg := range r.exempt {
			if got := layerViolations(pkg, []string{dep}); len(got) != 0 && strings.Contains(got[0], r.why) {
				t.Errorf("rule %s -/-> %s fires on %s, which it exempts", r.from, r.dep, pkg)
			}
		}
		for _, ok := range r.except {
			if got := layerViolations(r.from, []string{ok}); len(got) != 0 {
				t.Errorf("rule %s -/-> %s fires on its exception %s", r.from, r.dep, ok)
			}
		}
	}
	if got := layerViolations("server/guard", []string{"server/hostname", "server/engine"}); len(got) != 0 {
		t.Errorf("allowed dependencies flagged: %v", got)
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
