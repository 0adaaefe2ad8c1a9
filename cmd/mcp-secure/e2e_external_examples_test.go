//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// copyExample copies examples/plugins/<name> (without built files) to a
// plugin directory of e and returns it.
func copyExample(t *testing.T, e *env, name string) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "plugins", name)
	dst := filepath.Join(e.dir, "plugins", name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.IsDir() || en.Name() == name { // the built Go binary, if any
			continue
		}
		st, err := en.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(src, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, en.Name()), data, st.Mode().Perm()&0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestExternalExamples runs each example plugin of examples/plugins
// through the real binary, with its manifest as shipped.
func TestExternalExamples(t *testing.T) {
	e := newEnv(t, extPolicy("plugins/hash", "plugins/jsonfmt", "plugins/wordcount"))
	hashDir := copyExample(t, e, "hash")
	build := exec.Command("go", "build", "-o", filepath.Join(hashDir, "hash"), ".")
	build.Dir = filepath.Join("..", "..", "examples", "plugins", "hash")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the hash example: %v\n%s", err, out)
	}
	copyExample(t, e, "jsonfmt")
	copyExample(t, e, "wordcount")
	file := filepath.Join(e.workspace, "data.txt")
	if err := os.WriteFile(file, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	cs, logs := e.connectLog(t)
	for _, name := range []string{"hash", "jsonfmt", "wordcount"} {
		if !strings.Contains(logs.String(), "msg=\"external plugin\" name="+name) {
			t.Errorf("plugin %s did not load", name)
		}
	}
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	for _, c := range []struct {
		name, tool string
		args       map[string]any
		want       string
		isError    bool
	}{
		{"go/hash_text", "hash_text", map[string]any{"text": "abc"}, abc, false},
		{"go/hash_file", "hash_file", map[string]any{"path": file}, abc, false},
		{"go/hash_file-denied-by-policy", "hash_file", map[string]any{"path": e.policy}, "is not under filesystem.allowed_paths", true},
		{"node/format_json", "format_json", map[string]any{"json": `{"b":1,"a":[1,2]}`, "sort_keys": true, "indent": 1}, "{\n \"a\": [\n  1,\n  2\n ],\n \"b\": 1\n}", false},
		{"node/format_json-bad", "format_json", map[string]any{"json": `{"b":`}, "not JSON", true},
		{"sh/count_words", "count_words", map[string]any{"text": "one two\nthree \"four\" five"}, "5 words", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := call(t, cs, c.tool, c.args)
			if res.IsError != c.isError || !strings.Contains(text(res), c.want) {
				t.Fatalf("%s: got %q (error %v), want %q (error %v)", c.tool, text(res), res.IsError, c.want, c.isError)
			}
			d, r, launches := e.callRecords(t, c.tool)
			if d == nil || r == nil {
				t.Fatalf("audit records of %s missing", c.tool)
			}
			if strings.HasSuffix(c.name, "-denied-by-policy") {
				// Decided before the process starts: no launch, and the
				// path's own denial linked to the call.
				if launches != 0 {
					t.Errorf("%s: %d launches, want none", c.tool, launches)
				}
				e.findRecord(t, map[string]any{"kind": "filesystem", "result": "deny", "parent_decision_id": d["decision_id"]})
			}
		})
	}
}

// TestExternalExampleUpstreamTS runs examples/plugins/upstream-ts as a
// plugin directory with its manifest as shipped (type mcp, node as the
// named interpreter), after the `npm install` its README asks for (the
// SDK and zod copied from the test lockfile into its own node_modules):
// its tools are offered under demo__, a call is decided and audited, and
// its process reads the workspace but not the policy file.
func TestExternalExampleUpstreamTS(t *testing.T) {
	modules := nodeModules(t)
	e := newEnv(t, extPolicy("plugins/upstream-ts"))
	dir := copyExample(t, e, "upstream-ts")
	for _, pkg := range []string{"@modelcontextprotocol/sdk", "zod"} {
		installPackage(t, modules, filepath.Join(dir, "node_modules"), pkg)
	}
	notes := filepath.Join(e.workspace, "notes.txt")
	if err := os.WriteFile(notes, []byte("workspace notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	cs, logs := e.connectLog(t)
	if l := logs.String(); !strings.Contains(l, `msg="MCP plugin started" upstream=demo`) || !strings.Contains(l, `sandbox="Landlock ABI`) {
		t.Errorf("the start-up log does not say the plugin started, and how it is confined:\n%s", l)
	}
	if names := listNames(t, cs); !slices.Contains(names, "demo__echo") || !slices.Contains(names, "demo__read_file") {
		t.Fatalf("tools = %v, want demo__echo and demo__read_file", names)
	}
	if res := call(t, cs, "demo__echo", map[string]any{"text": "hi"}); res.IsError || text(res) != "hi" {
		t.Fatalf("demo__echo = %v %q", res.IsError, text(res))
	}
	d, r, _ := e.callRecords(t, "demo__echo")
	if d["result"] != "allow" || r == nil || r["status"] != "ok" {
		t.Errorf("audit: decision %v, result %v", d["result"], r)
	}
	if res := call(t, cs, "demo__read_file", map[string]any{"path": notes}); res.IsError || text(res) != "workspace notes" {
		t.Errorf("demo__read_file of the workspace = %v %q", res.IsError, text(res))
	}
	res := call(t, cs, "demo__read_file", map[string]any{"path": e.policy})
	wantError(t, res, "EACCES")
	if strings.Contains(text(res), "allowed_paths") {
		t.Errorf("the policy file was read: %q", text(res))
	}
}
