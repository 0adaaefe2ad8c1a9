package external

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const okManifest = `name: demo
version: 1.0.0
type: external
executable: run
tools:
  - name: demo_tool
    description: a tool
    input_schema: {type: object, properties: {x: {type: string}}}
`

func TestParse(t *testing.T) {
	for name, c := range map[string]struct {
		yaml string
		want string // "" means valid
	}{
		"ok/minimal":         {okManifest, ""},
		"ok/mcp-no-tools":    {"name: up\nversion: 1\ntype: mcp\nexecutable: server\n", ""},
		"ok/persistent":      {okManifest + "mode: persistent\n", ""},
		"ok/mcp-prefix":      {"name: up\nversion: 1\ntype: mcp\nexecutable: server\ntool_prefix: ''\nsandbox: {ports: [443]}\n", ""},
		"fail/mcp-tools":     {strings.Replace(okManifest, "type: external", "type: mcp", 1), "lists no tools"},
		"fail/mcp-mode":      {"name: up\nversion: 1\ntype: mcp\nexecutable: server\nmode: persistent\n", "mode applies to type external only"},
		"fail/prefix-type":   {okManifest + "tool_prefix: x_\n", "tool_prefix applies to type mcp only"},
		"fail/prefix":        {"name: up\nversion: 1\ntype: mcp\nexecutable: server\ntool_prefix: 'a b'\n", `tool_prefix "a b"`},
		"ok/sandbox":         {okManifest + "sandbox: {paths: [data, /srv], ports: [443]}\n", ""},
		"fail/empty":         {"", "empty manifest"},
		"fail/unknown-key":   {okManifest + "colour: blue\n", "demo/manifest.yaml:9: unknown key colour"},
		"fail/wrong-type":    {strings.Replace(okManifest, "executable: run", "executable: [run]", 1), "manifest.yaml:4: cannot unmarshal"},
		"fail/name":          {strings.Replace(okManifest, "name: demo", "name: ../x", 1), `name "../x"`},
		"fail/no-version":    {strings.Replace(okManifest, "version: 1.0.0", "version: ''", 1), "version is missing"},
		"fail/type":          {strings.Replace(okManifest, "type: external", "type: docker", 1), `unknown type "docker"`},
		"fail/no-type":       {strings.Replace(okManifest, "type: external\n", "", 1), "type is missing"},
		"fail/abs-exec":      {strings.Replace(okManifest, "executable: run", "executable: /bin/sh", 1), "relative to the manifest"},
		"fail/no-exec":       {strings.Replace(okManifest, "executable: run\n", "", 1), "executable is missing"},
		"fail/interpreter":   {okManifest + "interpreter: ./node\n", "interpreter"},
		"fail/sha":           {okManifest + "sha256: abc\n", "want 64 hex digits"},
		"fail/mode":          {okManifest + "mode: forever\n", `mode "forever"`},
		"fail/env":           {okManifest + "env: [A-B]\n", `env[0] "A-B"`},
		"fail/env-injection": {okManifest + "env: [OK, NODE_OPTIONS]\n", `env[1] NODE_OPTIONS is refused: it changes how a program loads code`},
		"fail/env-loader":    {okManifest + "env: [LD_PRELOAD]\n", `env[0] LD_PRELOAD is refused`},
		"fail/env-otel":      {okManifest + "env: [OTEL_EXPORTER_OTLP_HEADERS]\n", `env[0] OTEL_EXPORTER_OTLP_HEADERS is refused: it is the server's own`},
		"fail/env-own":       {okManifest + "env: [MCP_SECURE_PPROF]\n", `env[0] MCP_SECURE_PPROF is refused`},
		"fail/port":          {okManifest + "sandbox: {ports: [0]}\n", "port 0 is outside"},
		"fail/no-tools":      {"name: d\nversion: 1\ntype: external\nexecutable: run\n", "needs at least one tool"},
		"fail/tool-name":     {strings.Replace(okManifest, "demo_tool", "demo tool", 1), `tools[0].name "demo tool"`},
		"fail/no-desc":       {strings.Replace(okManifest, "description: a tool", "description: ''", 1), "description is missing"},
		"fail/schema-type":   {strings.Replace(okManifest, "{type: object, properties: {x: {type: string}}}", "{type: string}", 1), "object schema"},
		"fail/schema-ref":    {strings.Replace(okManifest, "{type: object, properties: {x: {type: string}}}", "{type: object, $ref: 'http://example.com/s.json'}", 1), "external references are not allowed"},
		"fail/dup-tool":      {okManifest + "  - name: demo_tool\n    description: again\n", `"demo_tool" is declared twice`},
		"fail/two-documents": {okManifest + "---\nname: x\n", "one YAML document"},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := Parse("/plugins/demo/manifest.yaml", []byte(c.yaml))
			if c.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if m.Mode == "" {
					t.Errorf("mode not defaulted")
				}
				return
			}
			var me *ManifestError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "/plugins/demo/manifest.yaml") {
				t.Fatalf("Parse: got %v, want a ManifestError naming the file and saying %q", err, c.want)
			}
		})
	}
}

func TestParseSandboxPaths(t *testing.T) {
	m, err := Parse("/plugins/demo/manifest.yaml", []byte(okManifest+"sandbox: {paths: [data, /srv/../srv/x]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := *m.Sandbox.Paths
	if got[0] != "/plugins/demo/data" || got[1] != "/srv/x" {
		t.Errorf("paths: %v", got)
	}
}

// writePlugin makes a plugin directory with an executable "run".
func writePlugin(t *testing.T, manifest string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte("#!/bin/sh\necho hi\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "run"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	sum := sha256.Sum256([]byte("#!/bin/sh\necho hi\n"))
	pin := hex.EncodeToString(sum[:])
	for name, c := range map[string]struct {
		manifest string
		mode     os.FileMode
		setup    func(t *testing.T, dir string)
		want     string
	}{
		"ok/plain":           {okManifest, 0o755, nil, ""},
		"ok/pinned":          {okManifest + "sha256: " + strings.ToUpper(pin) + "\n", 0o755, nil, ""},
		"ok/interpreter":     {okManifest + "interpreter: sh\n", 0o644, nil, ""},
		"fail/hash-mismatch": {okManifest + "sha256: " + strings.Repeat("0", 64) + "\n", 0o755, nil, "sha256 mismatch: executable"},
		"fail/not-exec":      {okManifest, 0o644, nil, "is not executable"},
		"fail/group-write":   {okManifest, 0o775, nil, "writable by group or others"},
		"fail/missing":       {strings.Replace(okManifest, "executable: run", "executable: gone", 1), 0o755, nil, "no such file or directory"},
		"fail/escape": {strings.Replace(okManifest, "executable: run", "executable: ../outside", 1), 0o755, func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(filepath.Dir(dir), "outside"), []byte("x"), 0o755)
		}, "outside the plugin directory"},
		"fail/symlink-out": {strings.Replace(okManifest, "executable: run", "executable: sh", 1), 0o755, func(t *testing.T, dir string) {
			os.Symlink("/bin/sh", filepath.Join(dir, "sh"))
		}, "outside the plugin directory"},
		"fail/dir-exec": {strings.Replace(okManifest, "executable: run", "executable: sub", 1), 0o755, func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
		}, "not a regular file"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writePlugin(t, c.manifest, c.mode)
			if c.setup != nil {
				c.setup(t, dir)
			}
			m, err := Load(dir)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				real, _ := filepath.EvalSymlinks(filepath.Join(dir, "run"))
				if m.ExecutablePath != real {
					t.Errorf("executable %s, want %s", m.ExecutablePath, real)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, ManifestName)) {
				t.Fatalf("Load: got %v, want an error naming the manifest and saying %q", err, c.want)
			}
		})
	}
	t.Run("fail/no-manifest", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ManifestName)) {
			t.Fatalf("Load: %v", err)
		}
	})
}

func TestProgramAndLaunchSpec(t *testing.T) {
	dir := writePlugin(t, okManifest+"interpreter: sh\nargs: [-x]\nenv: [SET, UNSET]\nmode: persistent\nsandbox: {ports: [443]}\n", 0o644)
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := m.LaunchSpec(func(k string) (string, bool) {
		if k == "SET" {
			return "v", true
		}
		return "", false
	})
	if spec.Path != "sh" || len(spec.Args) != 3 || spec.Args[1] != m.ExecutablePath || spec.Args[2] != "-x" {
		t.Errorf("program: %s %v", spec.Path, spec.Args)
	}
	if len(spec.Env) != 1 || spec.Env["SET"] != "v" {
		t.Errorf("env: %v", spec.Env)
	}
	if !spec.LongLived || spec.Ports == nil || (*spec.Ports)[0] != 443 || spec.Paths != nil || spec.Dir != m.Dir {
		t.Errorf("spec: %+v", spec)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(okManifest))
	f.Add([]byte("name: x\ntools: [{name: a, input_schema: {type: object, properties: {p: {$ref: '#'}}}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("/p/manifest.yaml", data)
		if err == nil && (m.Name == "" || m.Executable == "") {
			t.Fatalf("accepted a manifest without name or executable")
		}
	})
}

// A type mcp manifest: its prefix, a long-lived process, and the
// executable checked again at each start.
func TestMCPManifest(t *testing.T) {
	sum := sha256.Sum256([]byte("#!/bin/sh\necho hi\n"))
	dir := writePlugin(t, "name: up\nversion: 1\ntype: mcp\nexecutable: run\nsha256: "+hex.EncodeToString(sum[:])+"\n", 0o755)
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Prefix() != "up__" {
		t.Errorf("default prefix = %q", m.Prefix())
	}
	spec := m.LaunchSpec(func(string) (string, bool) { return "", false })
	if !spec.LongLived {
		t.Error("an MCP server's process is not long-lived")
	}
	// The pin travels with every start, for the launcher door to check.
	if spec.SHA256 != m.SHA256 || spec.SHA256Path != m.ExecutablePath || spec.SHA256 == "" {
		t.Errorf("launch spec pins %q of %q, want %q of %q", spec.SHA256, spec.SHA256Path, m.SHA256, m.ExecutablePath)
	}
	if err := m.CheckSHA256(); err != nil {
		t.Errorf("unchanged executable: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte("#!/bin/sh\necho swapped\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckSHA256(); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") || !strings.Contains(err.Error(), filepath.Join(dir, ManifestName)) {
		t.Errorf("swapped executable: %v", err)
	}
	empty := ""
	m.ToolPrefix = &empty
	if m.Prefix() != "" {
		t.Errorf("empty prefix = %q", m.Prefix())
	}
}
