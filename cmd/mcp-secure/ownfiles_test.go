//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/policy"
)

// serverCode lists a server's code below the allowed paths (its
// sandbox.read, its program, where its symlinks lead, each once, at most
// maxCodeLinks links), and warns of what it cannot keep from tools.
func TestServerCode(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "ws")
	code := filepath.Join(ws, "code")
	for _, d := range []string{code, filepath.Join(ws, "lib"), filepath.Join(ws, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(ws, "bin", "interp"), []byte("\x7fELF"), 0o755))
	must(os.WriteFile(filepath.Join(ws, "bin", "run"), []byte("#!"+filepath.Join(ws, "bin", "interp")+"\n"), 0o755))
	must(os.Symlink(filepath.Join(ws, "lib"), filepath.Join(code, "lib")))
	must(os.Symlink(filepath.Join(ws, "lib"), filepath.Join(code, "lib-again")))
	must(os.Symlink(ws, filepath.Join(code, "aup")))
	must(os.Symlink("/usr", filepath.Join(code, "outside")))
	// More links than maxCodeLinks, each to a place of its own.
	many := filepath.Join(ws, "many")
	for i := range maxCodeLinks + 1 {
		d := filepath.Join(many, fmt.Sprint(i))
		must(os.MkdirAll(d, 0o755))
		must(os.Symlink(d, filepath.Join(code, fmt.Sprintf("m%03d", i))))
	}
	must(os.WriteFile(filepath.Join(ws, "data.json"), nil, 0o644))
	src := fmt.Sprintf(`version: "1.0"
filesystem:
  allowed_paths: ["%[1]s/**"]
servers:
  a:
    command: %[1]s/bin/run
    args: ["%[1]s/data.json", "%[2]s/x"]
    sandbox:
      read: ["%[2]s"]
  b:
    command: node
    sandbox:
      read: ["%[2]s", "%[3]s"]
`, ws, code, dir)
	pol, err := policy.Parse(filepath.Join(dir, "p.yaml"), dir, []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	files, reads, warnings := serverCode(pol)
	owners := map[string][]string{}
	for _, f := range files {
		owners[f.path] = f.owners
	}
	for path, want := range map[string][]string{
		code:                            {"a", "b"},
		filepath.Join(ws, "bin/run"):    {"a"},
		filepath.Join(ws, "bin/interp"): {"a"},
		filepath.Join(ws, "lib"):        {"a", "b"},
	} {
		if !slices.Equal(owners[path], want) {
			t.Errorf("%s: owners %v, want %v", path, owners[path], want)
		}
	}
	if _, ok := owners["/usr"]; ok {
		t.Error("a link out of the allowed paths was listed")
	}
	if n := len(reads["a"]); n != maxCodeLinks {
		t.Errorf("server a is given %d link targets to read, want %d (the cap)", n, maxCodeLinks)
	}
	if slices.Contains(reads["a"], dir) || slices.Contains(reads["a"], ws) {
		t.Errorf("a link to a directory holding the allowed path was given to read: %v", reads["a"])
	}
	all := strings.Join(warnings, "\n")
	for _, want := range []string{
		"servers.b.sandbox.read path " + dir + " holds paths tools may use",
		"servers.a's code links (" + filepath.Join(code, "aup") + ") to " + ws + ", which holds paths tools may use",
		"servers.a's code links to more than 256 places below allowed paths",
		"servers.a.args names " + filepath.Join(ws, "data.json") + ", below an allowed path",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings do not say %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, filepath.Join(code, "x")) {
		t.Errorf("an argument within the server's code was warned of:\n%s", all)
	}
}
