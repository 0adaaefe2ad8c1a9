package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/policy"
)

// runCLI runs the command line in process, as main does.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// cliHome points HOME and the XDG directories at a fresh directory, so
// the user's own policy is never read.
func cliHome(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	return dir
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIHelpOnEveryCommand(t *testing.T) {
	cliHome(t)
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"serve", "--help"}, {"version", "--help"},
		{"policy", "--help"},
		{"policy", "check", "--help"}, {"policy", "compile", "--help"}, {"policy", "eval", "--help"},
		{"policy", "test", "--help"}, {"policy", "export", "--help"}, {"policy", "replay", "--help"},
		{"policy", "schema", "--help"},
		{"audit", "--help"}, {"audit", "verify", "--help"},
	} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 || errOut != "" || !strings.Contains(out, "Usage: mcp-secure") && !strings.Contains(out, "Usage:\n  mcp-secure") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the usage on stdout, exit 0", args, code, out, errOut)
		}
		if strings.Contains(out, "\n  -policy") || regexp.MustCompile(`\n  -[a-z]{2,}`).MatchString(out) {
			t.Errorf("%v: help spells a flag with one dash:\n%s", args, out)
		}
	}
}

func TestCLIVersionSpellings(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-v"}, {"--version"}, {"-version"}, {"serve", "-v"}, {"serve", "--version"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "OPA ") || !strings.Contains(out, "MCP protocol versions") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}

// A flag error is printed once, in the --name spelling, with where the
// help is; extra arguments are refused.
func TestCLIUsageErrors(t *testing.T) {
	cliHome(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "serve: unknown flag --nope (see mcp-secure serve --help)"},
		{[]string{"serve", "-nope"}, "serve: unknown flag --nope"},
		{[]string{"serve", "--max-in-flight", "x"}, `serve: invalid value "x" for --max-in-flight`},
		{[]string{"serve", "--max-in-flight", "0"}, "--max-in-flight must be at least 1"},
		{[]string{"serve", "--policy"}, "serve: flag --policy needs a value"},
		{[]string{"serve", "extra"}, `serve: unexpected argument "extra"`},
		{[]string{"version", "extra"}, `version: unexpected argument "extra"`},
		{[]string{"policy", "check", "a.yaml", "b.yaml"}, `policy check: unexpected argument "b.yaml"`},
		{[]string{"policy", "check", "--policy", "a.yaml", "b.yaml"}, `unexpected argument "b.yaml": the policy is already --policy a.yaml`},
		{[]string{"policy", "schema", "x"}, `policy schema: unexpected argument "x"`},
		{[]string{"policy", "export", "x"}, `policy export: unexpected argument "x"`},
		{[]string{"policy", "eval", "--tool", "a", "b"}, `policy eval: unexpected argument "b"`},
		{[]string{"policy", "eval"}, "policy eval: say what to decide"},
		{[]string{"policy", "eval", "--path", "/x", "--op", "chmod"}, `--op "chmod": want one of read, write`},
		{[]string{"policy", "replay"}, "policy replay: missing argument"},
		{[]string{"policy", "frobnicate"}, `policy: unknown command "frobnicate"`},
		{[]string{"policy"}, "policy: name a command"},
		{[]string{"audit", "verify"}, "audit verify: missing argument"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (see mcp-secure --help)`},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if out != "" {
			t.Errorf("%v: stdout %q, want nothing", tc.args, out)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, errOut, tc.want)
		}
		if n := strings.Count(errOut, "\n"); n != 1 {
			t.Errorf("%v: %d lines on stderr, want the error once:\n%s", tc.args, n, errOut)
		}
	}
}

// policy check reports every problem in the file at once, each with its
// line and key, and every strict-mode problem in the user's Rego.
func TestPolicyCheckEveryProblem(t *testing.T) {
	dir := cliHome(t)
	bad := writeFile(t, dir, "bad.yaml", `version: "1.0"
network:
  allowed_ranges: ["10.0.0.1", "10.0.0.0/33"]
  blocked_ports: [0]
tools:
  timeout: soon
  alowed: ["*"]
audit:
  log_level: LOUD
`)
	code, _, errOut := runCLI(t, "policy", "check", bad)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2: %s", code, errOut)
	}
	for _, want := range []string{
		`bad.yaml:3: network.allowed_ranges[0]: "10.0.0.1" is one address, not a CIDR: write 10.0.0.1/32`,
		`bad.yaml:3: network.allowed_ranges[1]: "10.0.0.0/33" is not a CIDR: the prefix length after / is 0-32`,
		`bad.yaml:4: network.blocked_ports[0]: port 0 is outside 1-65535`,
		`bad.yaml:6: tools.timeout: want a number`,
		`bad.yaml:7: tools.alowed: unknown key`,
		`bad.yaml:9: audit.log_level: unknown level "LOUD"`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	writeFile(t, dir, "strict.rego", `package mcp.tools

import data.mcp.policy

deny contains "x" if {
	unused := 1
	input.tool == "a"
}

deny contains "y" if {
	other := 2
	input.tool == "b"
}
`)
	pol := writeFile(t, dir, "strict.yaml", "rego:\n  modules: [strict.rego]\n")
	code, _, errOut = runCLI(t, "policy", "check", "--policy", pol)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2: %s", code, errOut)
	}
	for _, want := range []string{
		"opa check --strict: 3 problems",
		"strict.rego:3: rego_compile_error: import data.mcp.policy unused",
		"strict.rego:6: rego_compile_error: assigned var unused unused",
		"strict.rego:11: rego_compile_error: assigned var other unused",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestPolicyEval(t *testing.T) {
	dir := cliHome(t)
	writeFile(t, dir, "rules.rego", `package mcp.tools

deny contains "no bugs about the moon" if {
	input.tool == "add_bug"
	contains(input.arguments.title, "moon")
}
`)
	pol := writeFile(t, dir, "policy.yaml", `version: "1.0"
network:
  allowed_endpoints:
    - host: example.org
      ports: [443]
  allow_dns: true
filesystem:
  allowed_paths: ["`+dir+`/ws/"]
rego:
  modules: [rules.rego]
`)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"allow/tool", []string{"--tool", "add_bug", "--args", `{"title":"sun"}`}, 0, []string{"allow: tool add_bug (mcp/tools/decision)"}},
		{"deny/user-rule", []string{"--tool", "add_bug", "--args", `{"title":"moon"}`, "--explain"}, 1, []string{
			"deny: tool add_bug", "reason: no bugs about the moon", "rules.rego:3 [user]: deny contains", "rego/mcp/tools/tools.rego"}},
		{"deny/unknown-tool", []string{"--tool", "nope"}, 1, []string{`reason: tool "nope" is not registered`}},
		{"error/args", []string{"--tool", "add_bug", "--args", `{"title":`}, 2, nil},
		{"error/args-not-object", []string{"--tool", "add_bug", "--args", `[1]`}, 2, nil},
		{"allow/network-name", []string{"--network", "example.org:443"}, 0, []string{"allow: resolve example.org"}},
		{"deny/network-dial-private", []string{"--network", "example.org:443", "--ip", "10.1.2.3"}, 1, []string{"allow: resolve example.org", "deny: connect example.org:443 (10.1.2.3)"}},
		{"deny/network-ip", []string{"--network", "127.0.0.1:22"}, 1, []string{"deny: connect 127.0.0.1:22", "not in network.allowed_ranges"}},
		{"allow/path", []string{"--path", dir + "/ws/notes.txt", "--op", "write"}, 0, []string{"allow: write " + dir + "/ws/notes.txt (mcp/filesystem/decision)"}},
		{"deny/path", []string{"--path", "/etc/shadow"}, 1, []string{"not under filesystem.allowed_paths"}},
		{"deny/policy-file", []string{"--path", pol}, 1, []string{"deny: read " + pol}},
		{"deny/exec", []string{"--exec", "ls", "-l"}, 1, []string{"deny: exec ls -l (mcp/commands/decision)", "commands.allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"policy", "eval", "--policy", pol}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tc.code != 2 && errOut != "" {
				t.Errorf("stderr %q, want nothing", errOut)
			}
		})
	}
}

// An allowed command shows the question the command door asked on the
// way (could a tool write the program?) apart from the verdict.
func TestPolicyEvalExecAside(t *testing.T) {
	dir := cliHome(t)
	pol := writeFile(t, dir, "policy.yaml", "version: \"1.0\"\nfilesystem:\n  allowed_paths: [\""+dir+"/ws/\"]\ncommands:\n  allowed: [\"true\"]\n")
	code, out, errOut := runCLI(t, "policy", "eval", "--policy", pol, "--exec", "true")
	if code != 0 || !strings.Contains(out, "  asked on the way (not the verdict), deny: could a tool write /usr/bin/true?") || !strings.Contains(out, "allow: exec true (mcp/commands/decision)") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

// The input file names the decision point's input directly.
func TestPolicyEvalInputFile(t *testing.T) {
	dir := cliHome(t)
	in := writeFile(t, dir, "in.json", `{"phase":"dial","host":"","ip":"169.254.169.254","port":80,"network":"tcp","tool":"web_search"}`)
	code, out, errOut := runCLI(t, "policy", "eval", "--input", in, "--point", "network")
	if code != 1 || !strings.Contains(out, "deny: input "+in+" (mcp/network/decision)") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestPolicySchemaCommand(t *testing.T) {
	want, err := policy.Schema()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "policy", "schema")
	if code != 0 || out != string(want) {
		t.Errorf("exit %d; output differs from policy.Schema()", code)
	}
}

// examples/policies: each example passes policy check, its tests pass
// under policy test, and opa test on the export of the same policy agrees.
func TestExamplePolicies(t *testing.T) {
	cliHome(t)
	dirs, err := filepath.Glob("../../examples/policies/*/policy.yaml")
	if err != nil || len(dirs) < 5 {
		t.Fatalf("want at least five example policies, found %d (%v)", len(dirs), err)
	}
	for _, pol := range dirs {
		name := filepath.Base(filepath.Dir(pol))
		t.Run(name, func(t *testing.T) {
			if code, out, errOut := runCLI(t, "policy", "check", "--policy", pol); code != 0 {
				t.Fatalf("policy check: exit %d\n%s%s", code, out, errOut)
			}
			code, out, errOut := runCLI(t, "policy", "test", "--policy", pol)
			ours := passLine(out)
			if code != 0 || ours == "" {
				t.Fatalf("policy test: exit %d\n%s%s", code, out, errOut)
			}
			export := t.TempDir()
			if code, out, errOut := runCLI(t, "policy", "export", "--policy", pol, "-o", export); code != 0 {
				t.Fatalf("policy export: exit %d\n%s%s", code, out, errOut)
			}
			tests, _ := filepath.Glob(filepath.Join(filepath.Dir(pol), "*_test.rego"))
			theirs := opaTool(t, append([]string{"test", export}, tests...)...)
			if passLine(theirs) != ours {
				t.Errorf("policy test says %q, opa test on the export says %q", ours, passLine(theirs))
			}
		})
	}
}

// policy test runs the repository's own suite as opa test does.
func TestPolicyTestMatchesOPA(t *testing.T) {
	cliHome(t)
	paths := []string{"../../rego", "../../policy-tests", "../../examples/rego"}
	code, out, errOut := runCLI(t, append([]string{"policy", "test"}, paths...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	theirs := opaTool(t, append([]string{"test"}, paths...)...)
	if passLine(out) == "" || passLine(out) != passLine(theirs) {
		t.Errorf("policy test: %q, opa test: %q", passLine(out), passLine(theirs))
	}
	code, out, _ = runCLI(t, "policy", "test", "../../rego", "--run", "network", "-v")
	if code != 0 || strings.Contains(out, "tools_test") || !strings.Contains(out, "network_test") {
		t.Errorf("--run network -v: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI(t, "policy", "test", "../../rego", "--coverage", "--threshold", "99.9")
	if code != exitError || !strings.Contains(out, "coverage: ") || !strings.Contains(errOut, "below the threshold") {
		t.Errorf("--threshold 99.9: exit %d\n%s%s", code, out, errOut)
	}
	// With rules of the user's own, coverage is theirs: the example's
	// rules are all covered by its tests.
	code, out, errOut = runCLI(t, "policy", "test", "--policy", "../../examples/policies/no-secrets-in-bugs/policy.yaml", "--threshold", "90")
	if code != 0 || !strings.Contains(out, "coverage: 100.00%") || strings.Contains(out, "_test.rego") || strings.Contains(out, "tools.rego") {
		t.Errorf("--threshold 90 on the example's own rules: exit %d\n%s%s", code, out, errOut)
	}
	dir := t.TempDir()
	writeFile(t, dir, "fail_test.rego", "package x_test\n\ntest_fails if {\n\t1 == 2\n}\n")
	if code, out, _ := runCLI(t, "policy", "test", dir); code != exitError || !strings.Contains(out, "FAIL: 1/1") {
		t.Errorf("a failing test: exit %d\n%s", code, out)
	}
}

func TestPolicyExportForOPA(t *testing.T) {
	cliHome(t)
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "policy", "export", "-o", dir); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range []string{"data.json", "capabilities.json", "rego/mcp/tools/tools.rego", "rego/mcp/network/network.rego"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	opaTool(t, "check", "--strict", "--capabilities", filepath.Join(dir, "capabilities.json"), dir)
	in := writeFile(t, t.TempDir(), "in.json", `{"tool":"web_search","registered":true,"arguments":{"query":"q"},"client":{"name":"c","version":"1"}}`)
	out := opaTool(t, "eval", "-f", "raw", "-d", dir, "-i", in, "data.mcp.tools.decision")
	if strings.TrimSpace(out) != `{"allow":true,"reasons":[]}` {
		t.Errorf("opa eval on the export: %s", out)
	}
}

// opaTool runs the pinned OPA CLI (go tool opa) and fails the test on a
// non-zero exit.
func opaTool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "opa"}, args...)...)
	// The go command finds its module and build caches under the real
	// home, not the test's.
	cmd.Env = append(os.Environ(), "HOME="+realHome)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go tool opa %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// realHome is HOME before any test changed it.
var realHome = os.Getenv("HOME")

var passRe = regexp.MustCompile(`(?m)^PASS: \d+/\d+$`)

func passLine(out string) string { return passRe.FindString(out) }
