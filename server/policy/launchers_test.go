package policy

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLauncherWarnings(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte("commands:\n  allowed: [git, /usr/bin/env, python3.11, cat, ls, Perl]\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	got := launcherWarnings(p, nil)
	want := map[string]string{`"git"`: "alias", `"/usr/bin/env"`: "runs whatever program", `"python3.11"`: "shell or interpreter", `"Perl"`: "shell or interpreter"}
	if len(got) != len(want) {
		t.Fatalf("got %d warnings, want %d: %q", len(got), len(want), got)
	}
	for _, w := range got {
		ok := false
		for name, why := range want {
			if strings.Contains(w, name) && strings.Contains(w, why) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("unexpected warning %q", w)
		}
	}
	none, _ := Parse("p.yaml", "/", []byte("commands:\n  allowed: [cat, ls]\n"), env(map[string]string{"HOME": "/h"}))
	if w := launcherWarnings(none, nil); len(w) != 0 {
		t.Errorf("warnings for cat, ls: %q", w)
	}
	var all []string
	for _, f := range warners {
		all = append(all, f(p, nil)...)
	}
	for _, w := range got {
		if !strings.Contains(strings.Join(all, "\n"), w) {
			t.Errorf("launcherWarnings is not registered: %q missing", w)
		}
	}
}

func TestCommandsAllowedEntries(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte("commands:\n  allowed: [Git, /usr/bin/../bin/cat, /opt/x/tool]\n  unconfined: true\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Data()["commands"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"allowed": []any{"git"}, "allowed_paths": []any{"/usr/bin/cat", "/opt/x/tool"}, "blocked": []any{}, "unconfined": true}, c); diff != "" {
		t.Error(diff)
	}
	if _, err := Parse("p.yaml", "/", []byte("commands:\n  allowed: [bin/git]\n"), env(map[string]string{"HOME": "/h"})); err == nil || !strings.Contains(err.Error(), "bare name") || !strings.Contains(err.Error(), "commands.allowed[0]") {
		t.Errorf("relative path with a slash: %v", err)
	}
}

func TestChildPorts(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte(`network:
  allowed_ranges: [10.0.0.0/8]
  allowed_endpoints:
    - {host: a.example, ports: [443, 22]}
    - {host: b.example, ports: [443, 8080]}
  blocked_ports: [22]
`), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint16{443, 8080}, p.ChildPorts()); diff != "" {
		t.Error(diff)
	}
	d, _ := Default()
	if diff := cmp.Diff([]uint16{443}, d.ChildPorts()); diff != "" {
		t.Error(diff)
	}
}

func TestSandboxWarnings(t *testing.T) {
	p, err := Parse("p.yaml", "/", []byte("filesystem:\n  allowed_paths: [/ws/**, \"**/proj/**\"]\n  denied_paths: [\"**/.env\"]\ncommands:\n  allowed: [cat]\n  unconfined: true\n  allow_udp: true\n"), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(sandboxWarnings(p, nil), "\n")
	for _, want := range []string{"a command can read and write a denied file", "starts with ** gives commands no access", "commands.unconfined: commands run without Landlock", "commands.allow_udp: commands can send UDP datagrams to any host and port"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
	none, _ := Parse("p.yaml", "/", []byte("filesystem:\n  allowed_paths: [/ws/**]\n  denied_paths: [\"**/.env\"]\ncommands:\n  allowed: []\n"), env(map[string]string{"HOME": "/h"}))
	if w := sandboxWarnings(none, nil); len(w) != 0 {
		t.Errorf("warnings when nothing runs: %q", w)
	}
}

// isShellOrInterpreter matches as the regular expression it replaced.
func TestIsShellOrInterpreterAsRegexp(t *testing.T) {
	re := regexp.MustCompile(`^(sh|bash|dash|zsh|ksh|mksh|csh|tcsh|fish|ash|python|pypy|perl|ruby|node|nodejs|deno|bun|php|lua|luajit|tclsh|wish|rscript|r|osascript|pwsh|java|jshell|groovy|scala|julia|guile|racket|sbcl|ghci|runghc|expect)[0-9._-]*$`)
	names := []string{"", "sh", "bash", "python3", "python3.11", "perl5.36.0", "node-18", "r", "r4", "rr", "ra", "shx", "xsh",
		"python3x", "3python", "python_", "lua5.4", "luajit-2.1", ".sh", "sh.", "bash-", "pythonpython", "git", "nodejs20", "busybox", "java17", "ash", "dash2"}
	for name := range shellsAndInterpreters {
		names = append(names, name, name+"3", name+"x", "x"+name, name+"-1.2_3")
	}
	for _, n := range names {
		if got, want := isShellOrInterpreter(n), re.MatchString(n); got != want {
			t.Errorf("%q: %v, the regular expression says %v", n, got, want)
		}
	}
}

func FuzzIsShellOrInterpreter(f *testing.F) {
	re := regexp.MustCompile(`^(sh|bash|dash|zsh|ksh|mksh|csh|tcsh|fish|ash|python|pypy|perl|ruby|node|nodejs|deno|bun|php|lua|luajit|tclsh|wish|rscript|r|osascript|pwsh|java|jshell|groovy|scala|julia|guile|racket|sbcl|ghci|runghc|expect)[0-9._-]*$`)
	for _, s := range []string{"python3.11", "sh", "x", "r-", "nodejs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		if got, want := isShellOrInterpreter(n), re.MatchString(n); got != want {
			t.Errorf("%q: %v, the regular expression says %v", n, got, want)
		}
	})
}
