package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestReferenceFormatLoads(t *testing.T) {
	data, err := os.ReadFile("testdata/reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("reference.yaml", "/etc/mcp", data, env(map[string]string{"HOME": "/home/ann"}))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Data()
	got := func(path ...string) any {
		var v any = d
		for _, k := range path {
			v = v.(map[string]any)[k]
		}
		return v
	}
	for _, tc := range []struct {
		path []string
		want any
	}{
		{[]string{"network", "allowed_ranges"}, []any{"127.0.0.0/8", "10.0.0.0/8", "::1/128"}},
		{[]string{"network", "blocked_ports"}, []any{22}},
		{[]string{"network", "allow_dns"}, true},
		{[]string{"network", "dns_allowlist"}, []any{"lite.duckduckgo.com", "api.example.org"}},
		{[]string{"network", "endpoints", "lite.duckduckgo.com", "ports"}, []any{443}},
		{[]string{"network", "endpoints", "api.example.org", "ports"}, []any{443, 8443}},
		{[]string{"filesystem", "allowed_paths"}, []any{"/home/ann/projects/**", "/home/ann/projects", "/srv/data/**", "/srv/data"}},
		{[]string{"filesystem", "denied_paths"}, []any{"**/.ssh/**", "**/.ssh", "**/*.pem"}},
		{[]string{"commands", "blocked"}, []any{"curl", "wget"}},
		{[]string{"commands", "allowed"}, nil},
		{[]string{"tools", "allowed"}, []any{"*"}},
		{[]string{"tools", "denied"}, []any{}},
		{[]string{"tools", "timeout_seconds"}, 12.5},
	} {
		if diff := cmp.Diff(tc.want, got(tc.path...)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", strings.Join(tc.path, "."), diff)
		}
	}
	if p.Audit.LogFile != "/home/ann/.mcp-secure/audit.log" {
		t.Errorf("log file = %q", p.Audit.LogFile)
	}
	if p.Timeout() != 12500*time.Millisecond {
		t.Errorf("timeout = %v", p.Timeout())
	}
	for tool, want := range map[string]int{"web_search": 20, "add_bug": 0, "other": 60, "": 60} {
		if got := p.RateLimit(tool); got != want {
			t.Errorf("RateLimit(%q) = %d, want %d", tool, got, want)
		}
	}
}

func TestStrictErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		yaml     string
		line     int
		key, msg string
	}{
		"unknown-top-key":     {"version: \"1.0\"\nnetwrok: {}\n", 2, "netwrok", "unknown key"},
		"unknown-nested-key":  {"network:\n  allow_dns: true\n  alowed_ranges: []\n", 3, "network.alowed_ranges", "unknown key"},
		"unknown-endpoint":    {"network:\n  allowed_endpoints:\n    - host: a.b\n      port: 443\n", 4, "network.allowed_endpoints[0].port", "unknown key"},
		"port-as-string":      {"network:\n  blocked_ports: [\"ssh\"]\n", 2, "network.blocked_ports[0]", "want an integer"},
		"bool-as-list":        {"network:\n  allow_dns: [yes]\n", 2, "network.allow_dns", "want bool"},
		"section-as-scalar":   {"tools: 5\n", 1, "tools", "want a mapping"},
		"bad-cidr":            {"version: \"1.0\"\nnetwork:\n  allowed_ranges: [\"10.0.0.0/33\"]\n", 3, "network.allowed_ranges[0]", "not a CIDR"},
		"bare-ip-not-cidr":    {"network:\n  allowed_ranges:\n    - 10.0.0.1\n", 3, "network.allowed_ranges[0]", "not a CIDR"},
		"port-zero":           {"network:\n  blocked_ports: [0]\n", 2, "network.blocked_ports[0]", "outside 1-65535"},
		"port-too-big":        {"network:\n  allowed_endpoints:\n    - host: a.b\n      ports: [443, 70000]\n", 4, "network.allowed_endpoints[0].ports[1]", "outside 1-65535"},
		"endpoint-no-ports":   {"network:\n  allowed_endpoints:\n    - host: a.b\n", 3, "network.allowed_endpoints[0].ports", "at least one port"},
		"bad-host":            {"network:\n  dns_allowlist: [\"a b.com\"]\n", 2, "network.dns_allowlist[0]", "not a host name"},
		"unset-var":           {"filesystem:\n  allowed_paths:\n    - \"${MCP_NO_SUCH_VAR}/x\"\n", 3, "filesystem.allowed_paths[0]", "MCP_NO_SUCH_VAR is not set"},
		"negative-rate":       {"tools:\n  rate_limits:\n    default: -1\n", 3, "tools.rate_limits.default", "negative"},
		"rate-as-float":       {"tools:\n  rate_limits:\n    web_search: 1.5\n", 3, "tools.rate_limits.web_search", "want an integer"},
		"timeout-huge":        {"tools:\n  timeout: 99999\n", 2, "tools.timeout", "outside"},
		"duplicate-key":       {"tools:\n  timeout: 1\n  timeout: 2\n", 3, "tools.timeout", "duplicate key"},
		"unknown-include":     {"audit:\n  include: [timestamp, everything]\n", 2, "audit.include[1]", "unknown field"},
		"bad-level":           {"audit:\n  log_level: LOUD\n", 2, "audit.log_level", "unknown level"},
		"missing-rego-module": {"rego:\n  modules: [nope.rego]\n", 2, "rego.modules[0]", "no such file"},
		"bad-version":         {"version: \"2.0\"\n", 1, "version", "unsupported version"},
		"yaml-syntax":         {"network:\n  allow_dns: true\n bad: [\n", 2, "", "YAML syntax"},
		"not-a-mapping":       {"- a\n- b\n", 1, "", "must be a YAML mapping"},
		"alias":               {"a: &x [1]\nnetwork:\n  blocked_ports: *x\n", 1, "a", "unknown key"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if pe.Line != tc.line || pe.Key != tc.key || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("got line %d key %q msg %q; want line %d key %q msg containing %q", pe.Line, pe.Key, pe.Msg, tc.line, tc.key, tc.msg)
			}
			prefix := path
			if tc.line > 0 {
				prefix = path + ":" + string(rune('0'+tc.line))
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("message %q does not start with file:line", err)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	d := &decoder{lookup: env(map[string]string{"A": "x", "EMPTY": ""}), home: "/home/u"}
	for in, want := range map[string]string{
		"${A}/b":            "x/b",
		"${B:-def}/c":       "def/c",
		"${EMPTY:-dflt}":    "dflt",
		"~/w":               "/home/u/w",
		"~":                 "/home/u",
		"a~/b":              "a~/b",
		"$$HOME":            "$HOME",
		"$A":                "$A",
		"${B:-~/ws}/x":      "/home/u/ws/x",
		"pre${A}mid${A}end": "prexmidxend",
	} {
		got, err := d.expand(in)
		if err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"${B}", "${EMPTY}", "${A", "${}", "${1A}"} {
		if _, err := d.expand(bad); err == nil {
			t.Errorf("expand(%q) succeeded", bad)
		}
	}
}

func TestEmptyAllowedPathsAllowNothing(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte("filesystem:\n  allowed_paths: []\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	fs := p.Data()["filesystem"].(map[string]any)
	if got := fs["allowed_paths"].([]any); len(got) != 0 {
		t.Errorf("allowed_paths = %v, want none", got)
	}
}

func TestRelativeFilesResolveAgainstPolicyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rule.rego"), []byte("package mcp.tools\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "filesystem:\n  allowed_paths: [\"/abs/dir/\"]\naudit:\n  log_file: logs/a.log\nrego:\n  modules: [rule.rego]\n"
	p, err := Parse("p.yaml", dir, []byte(src), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"/abs/dir/**", "/abs/dir"}
	if diff := cmp.Diff(want, p.Data()["filesystem"].(map[string]any)["allowed_paths"]); diff != "" {
		t.Errorf("allowed_paths (-want +got):\n%s", diff)
	}
	if p.Audit.LogFile != dir+"/logs/a.log" || !slices.Equal(p.Rego.Modules, []string{dir + "/rule.rego"}) {
		t.Errorf("log %q modules %q", p.Audit.LogFile, p.Rego.Modules)
	}
}

func TestDefaultPolicy(t *testing.T) {
	t.Setenv("MCP_SECURE_WORKSPACE", "/work/space")
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if p.Source() != EmbeddedName {
		t.Errorf("source %q", p.Source())
	}
	d := p.Data()
	net := d["network"].(map[string]any)
	if diff := cmp.Diff([]any{}, net["allowed_ranges"]); diff != "" {
		t.Errorf("default allows ranges: %s", diff)
	}
	eps := net["endpoints"].(map[string]any)
	if len(eps) != 1 || eps["lite.duckduckgo.com"] == nil {
		t.Errorf("default endpoints = %v", eps)
	}
	if got := d["filesystem"].(map[string]any)["allowed_paths"].([]any); got[0] != "/work/space/**" {
		t.Errorf("default workspace = %v", got)
	}
	if p.RateLimit("web_search") != 20 || p.Timeout() != 30*time.Second {
		t.Errorf("default rate %d timeout %v", p.RateLimit("web_search"), p.Timeout())
	}
}

func TestToolAndCommandAllowlists(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte("tools:\n  allowed: [search_*]\n  denied: [x]\ncommands:\n  allowed: [Git]\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Data()
	if diff := cmp.Diff([]any{"search_*"}, d["tools"].(map[string]any)["allowed"]); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]any{"git"}, d["commands"].(map[string]any)["allowed"]); diff != "" {
		t.Error(diff)
	}
	p, err = Parse("p.yaml", "/", []byte("commands:\n  allowed: []\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{}, p.Data()["commands"].(map[string]any)["allowed"]); diff != "" {
		t.Errorf("an empty allowlist must stay empty (allow nothing): %s", diff)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"version: \"1.0\"\n",
		"network:\n  allowed_ranges: [\"10.0.0.0/8\"]\n  blocked_ports: [22]\n",
		"filesystem:\n  allowed_paths: [\"${HOME}/x/**\"]\n",
		"tools:\n  rate_limits: {default: 5}\n  timeout: 3\n",
		"a: &x [1]\nb: *x\n",
	} {
		f.Add([]byte(s))
	}
	lookup := env(map[string]string{"HOME": "/h"})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", "/", data, lookup)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *policy.Error: %v", err)
			}
			return
		}
		_ = p.Data()
	})
}

func TestRoots(t *testing.T) {
	p, err := Parse("p.yaml", "/etc/mcp", []byte(`filesystem:
  allowed_paths: ["/home/u/ws/**", "/tmp/*.txt", "/srv/a/b", "/data/x*/y/**", "**/build/**"]
`), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/home/u/ws", "/tmp", "/srv/a/b", "/data", "/"}
	if diff := cmp.Diff(want, p.Roots()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEmptyAllowlistKeysAllowNothing(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte("tools:\n  allowed:\ncommands:\n  allowed:\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Data()
	tools := d["tools"].(map[string]any)
	if diff := cmp.Diff([]any{}, tools["allowed"]); diff != "" || tools["allow_all"] != false {
		t.Errorf("tools.allowed with no value must allow nothing: %v %v", tools["allowed"], tools["allow_all"])
	}
	if diff := cmp.Diff([]any{}, d["commands"].(map[string]any)["allowed"]); diff != "" {
		t.Errorf("commands.allowed with no value must allow nothing: %s", diff)
	}
}

// TestEnvRefs: every variable a ${VAR} expansion of the file names is
// listed, set or defaulted, once; an upstream's env value is the child's
// (taken when it starts), not the policy's own.
func TestEnvRefs(t *testing.T) {
	src := `telemetry:
  decision_logs:
    service:
      url: https://dl.example/logs
      credentials:
        bearer:
          token: "${DL_TOKEN}"
plugins:
  websearch:
    api_key: "${SEARCH_KEY}"
    region: "${REGION:-eu}"
filesystem:
  allowed_paths: ["${HOME}/w/**", "${DATA}/**"]
servers:
  gh:
    command: node
    args: ["${DATA}/server.js"]
    env:
      GITHUB_TOKEN: "${GITHUB_TOKEN}"
`
	p, err := Parse("p.yaml", "/", []byte(src), env(map[string]string{"HOME": "/h", "DL_TOKEN": "s3cret", "SEARCH_KEY": "k", "DATA": "/d"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DATA", "DL_TOKEN", "HOME", "REGION", "SEARCH_KEY"}
	if diff := cmp.Diff(want, p.EnvRefs()); diff != "" {
		t.Errorf("EnvRefs (-want +got):\n%s", diff)
	}
}

// A relative or empty XDG_* variable counts as unset, so the default
// audit log (and any ${XDG_...} of the policy) never depends on the
// directory the server runs in.
func TestRelativeXDGIsUnset(t *testing.T) {
	for _, tc := range []struct {
		state, want string
	}{
		{"/s", "/s/mcp-secure/audit.log"},
		{"rel", "/h/.local/state/mcp-secure/audit.log"},
		{"", "/h/.local/state/mcp-secure/audit.log"},
	} {
		vars := map[string]string{"HOME": "/h", "XDG_STATE_HOME": tc.state, "XDG_DATA_HOME": tc.state}
		p, err := Parse("p.yaml", "/etc/mcp", []byte("filesystem:\n  allowed_paths: [\"${XDG_DATA_HOME:-/d}/ws/**\"]\n"), env(vars))
		if err != nil {
			t.Fatal(err)
		}
		if p.Audit.LogFile != tc.want {
			t.Errorf("XDG_STATE_HOME=%q: audit log %s, want %s", tc.state, p.Audit.LogFile, tc.want)
		}
		wantRoot := "/d/ws"
		if tc.state == "/s" {
			wantRoot = "/s/ws"
		}
		if roots := p.Roots(); len(roots) != 1 || roots[0] != wantRoot {
			t.Errorf("XDG_DATA_HOME=%q: roots %v, want [%s]", tc.state, roots, wantRoot)
		}
	}
}
