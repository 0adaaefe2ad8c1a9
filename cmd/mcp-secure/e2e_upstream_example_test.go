//go:build unix

package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestE2EClientExampleFilesystemServer runs examples/clients/upstream as
// its README tells a Claude Desktop user to: the reference filesystem
// server (@modelcontextprotocol/server-filesystem, from the test/clients
// lockfile) installed under ~/.local/lib/mcp-servers, the example's
// claude_desktop_config.json with its placeholders filled in, and the
// example policy file itself. Its tools are offered as files__*, a read
// in ~/projects answers, the write tools the policy denies are refused
// and audited, and the server's own process cannot read outside what the
// policy gives it.
func TestE2EClientExampleFilesystemServer(t *testing.T) {
	modules := nodeModules(t)
	const pkg = "@modelcontextprotocol/server-filesystem"
	if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
		t.Fatalf("%s is not installed in %s: run `make clients-deps` (npm ci in test/clients): %v", pkg, modules, err)
	}
	home := t.TempDir()
	// `npm install --prefix ~/.local/lib/mcp-servers`, from the lockfile's
	// copy: the package and what it requires, copied (Node resolves a
	// symbolic link to its target, which the sandbox does not let it read).
	installPackage(t, modules, filepath.Join(home, ".local", "lib", "mcp-servers", "node_modules"), pkg)
	projects := filepath.Join(home, "projects")
	for _, d := range []string{projects, filepath.Join(home, ".ssh")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	notes := filepath.Join(projects, "notes.txt")
	if err := os.WriteFile(notes, []byte("project notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(home, ".ssh", "id_ed25519")
	if err := os.WriteFile(key, []byte("PRIVATE KEY"), 0o600); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile("../../examples/clients/upstream/claude_desktop_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		MCPServers map[string]clientServer `json:"mcpServers"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	s, ok := cfg.MCPServers["mcp-secure"]
	const placeholder = "/absolute/path/to/"
	if !ok || s.Command != placeholderBin || len(s.Args) != 3 || s.Args[0] != "serve" || s.Args[1] != "--policy" || !strings.HasPrefix(s.Args[2], placeholder) {
		t.Fatalf("claude_desktop_config.json: want mcp-secure serve --policy %s..., got %+v", placeholder, cfg.MCPServers)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(repo, strings.TrimPrefix(s.Args[2], placeholder))
	if _, err := os.Stat(policy); err != nil {
		t.Fatalf("the config's policy: %v", err)
	}
	state := filepath.Join(home, ".local", "state")
	e := &env{dir: home, policy: policy, audit: filepath.Join(state, "mcp-secure", "audit.log"), workspace: projects,
		vars: []string{"XDG_STATE_HOME=" + state, "XDG_DATA_HOME=" + filepath.Join(home, ".local", "share")}}
	var stderr syncBuffer
	cs := e.connectLogging(t, &stderr)

	names := listNames(t, cs)
	if !slices.Contains(names, "files__read_text_file") || !slices.Contains(names, "files__list_directory") {
		t.Fatalf("tools = %v, want the filesystem server's under files__", names)
	}
	if l := stderr.String(); !strings.Contains(l, `msg="upstream server started" upstream=files`) || !strings.Contains(l, `sandbox="Landlock ABI`) {
		t.Errorf("the start-up log does not say how the filesystem server is confined:\n%s", l)
	}

	res := call(t, cs, "files__read_text_file", map[string]any{"path": notes})
	if res.IsError || !strings.Contains(text(res), "project notes") {
		t.Fatalf("read_text_file %s = %v %q", notes, res.IsError, text(res))
	}
	read := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "files__read_text_file", "result": "allow"})
	e.findRecord(t, map[string]any{"kind": "tool_result", "decision_id": read["decision_id"], "status": "ok"})

	// tools.denied: refused by the policy before the server sees it.
	res = call(t, cs, "files__write_file", map[string]any{"path": filepath.Join(projects, "new.txt"), "content": "x"})
	wantError(t, res, "denied by policy")
	e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "files__write_file", "result": "deny"})
	if _, err := os.Stat(filepath.Join(projects, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("the denied write happened: %v", err)
	}

	// Outside ~/projects: whatever the server's own checks say, the key
	// never comes back and is never audited.
	res = call(t, cs, "files__read_text_file", map[string]any{"path": key})
	if !res.IsError || strings.Contains(text(res), "PRIVATE KEY") {
		t.Errorf("read_text_file %s = %v %q, want an error", key, res.IsError, text(res))
	}
	cs.Close()
	if strings.Contains(stderr.String(), "PRIVATE KEY") {
		t.Error("the key reached the server's log")
	}
	if recs, err := os.ReadFile(e.audit); err != nil || strings.Contains(string(recs), "PRIVATE KEY") {
		t.Errorf("audit log: %v (or it holds the key)", err)
	}
}

// installPackage copies pkg from the node_modules directory modules into
// dst with every package it requires, found as Node finds them (the
// nearest node_modules up from the requiring package), at the same
// places below dst.
func installPackage(t *testing.T, modules, dst, pkg string) {
	t.Helper()
	done := map[string]bool{}
	var install func(from, name string)
	install = func(from, name string) {
		// from is the requiring package's directory relative to modules
		// ("" for the top); look in its node_modules, then up.
		dir := from
		for {
			rel := filepath.Join(dir, name)
			if dir != "" {
				rel = filepath.Join(dir, "node_modules", name)
			}
			if _, err := os.Stat(filepath.Join(modules, rel, "package.json")); err == nil {
				if done[rel] {
					return
				}
				done[rel] = true
				copyTree(t, filepath.Join(modules, rel), filepath.Join(dst, rel))
				var meta struct {
					Dependencies map[string]string `json:"dependencies"`
				}
				data, err := os.ReadFile(filepath.Join(modules, rel, "package.json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(data, &meta); err != nil {
					t.Fatalf("%s: %v", rel, err)
				}
				for dep := range meta.Dependencies {
					install(rel, dep)
				}
				return
			}
			if dir == "" {
				t.Fatalf("%s (required from %q) is not installed in %s", name, from, modules)
			}
			// Up one package: past "node_modules/<name>" (or "<name>"
			// at the top), a scoped name counting as one.
			dir = parentPackage(dir)
		}
	}
	install("", pkg)
}

// parentPackage is the package directory that holds the node_modules of
// the package at rel ("" for the top level).
func parentPackage(rel string) string {
	i := strings.LastIndex(rel, "node_modules"+string(filepath.Separator))
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(rel[:i], string(filepath.Separator))
}

// copyTree copies the regular files and directories below src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil // links (node_modules/.bin) are not needed
	})
	if err != nil {
		t.Fatal(err)
	}
}
