//go:build unix

package guard

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// trustedDir is a directory outside every allowed path, owned by root (or
// the test's user) and writable by nobody else, on the filesystem of
// /usr/bin when it can be: where an operator would install a tool.
func trustedDir(t *testing.T) string {
	t.Helper()
	for _, base := range []string{"/var/lib", "/usr/local/lib"} {
		dir, err := os.MkdirTemp(base, "mcp-secure-trust-")
		if err != nil {
			continue
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if os.Geteuid() == 0 {
		t.Fatal("cannot create a root-owned directory under /var/lib or /usr/local/lib")
	}
	t.Skip("needs a directory only root can write (run as root, as CI does)")
	return ""
}

// newTrustWorld is an fsWorld with the given commands section.
func newTrustWorld(t *testing.T, commands string) *execWorld {
	t.Helper()
	w := newFSWorld(t)
	src := fmt.Sprintf("filesystem:\n  allowed_paths: [\"%s/**\"]\ncommands:\n%s", w.ws, commands)
	pol, err := policy.Parse("trust.yaml", w.dir, []byte(src), func(k string) (string, bool) { return "/h", k == "HOME" })
	if err != nil {
		t.Fatal(err)
	}
	eng := engineFor(t, pol)
	w.files = NewFiles(eng, auditTo(w.audit), &FilesOptions{Roots: pol.Roots()})
	cmds := NewCommands(eng, auditTo(w.audit), w.files, &CommandsOptions{Allowed: pol.Commands.Allowed, Blocked: pol.Commands.Blocked, ConnectTCP: pol.ChildPorts(), Unconfined: noLandlock(t)})
	return &execWorld{fsWorld: w, cmds: cmds}
}

func writeExec(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		t.Fatal(err)
	}
	writeExec(t, dst, string(data), 0o755)
}

func TestExecTrust(t *testing.T) {
	td := trustedDir(t)
	gw := filepath.Join(td, "gw")
	os.Mkdir(gw, 0o755)
	os.Chmod(gw, 0o775)
	copyFile(t, "/usr/bin/cat", filepath.Join(gw, "cat"))
	if err := os.Link("/usr/bin/perl", filepath.Join(td, "perl5.36.0")); err != nil {
		t.Fatalf("hard link next to /usr/bin: %v", err)
	}
	writeExec(t, filepath.Join(td, "tool"), "#!/bin/sh\necho TOOL-RAN\n", 0o755)
	writeExec(t, filepath.Join(td, "penv"), "#!/usr/bin/env perl\nprint \"PERL-RAN\\n\";\n", 0o755)
	writeExec(t, filepath.Join(td, "penv-opts"), "#!/usr/bin/env -S perl -w\nprint \"PERL-RAN\\n\";\n", 0o755)
	writeExec(t, filepath.Join(td, "relative"), "#!sh\necho REL-RAN\n", 0o755)
	writeExec(t, filepath.Join(td, "loop"), "#!"+filepath.Join(td, "loop")+"\n", 0o755)

	for name, tc := range map[string]struct {
		commands string
		setup    func(w *execWorld) []string // returns argv
		reasons  []string
	}{
		"deny/script-named-cat-in-workspace": {"  allowed: [cat, cp, ls]\n", func(w *execWorld) []string {
			writeExec(t, w.ws+"/cat", "#!/bin/sh\necho SCRIPT-RAN\n", 0o755)
			return []string{w.ws + "/cat", "notes.txt"}
		}, []string{"is inside filesystem.allowed_paths", `interpreter "dash" (of a #! script) is not in commands.allowed`}},
		"deny/copy-of-id-named-cat": {"  allowed: [cat, cp, ls]\n", func(w *execWorld) []string {
			copyFile(t, "/usr/bin/id", w.ws+"/bin/cat")
			return []string{w.ws + "/bin/cat"}
		}, []string{"is inside filesystem.allowed_paths", "a tool could have written it"}},
		"deny/group-writable-dir": {"  allowed: [" + gw + "/cat]\n", func(*execWorld) []string {
			return []string{gw + "/cat", "/etc/hostname"}
		}, []string{gw + " is writable by group or others"}},
		"deny/hard-link-to-blocked": {"  blocked: [perl]\n", func(*execWorld) []string {
			return []string{td + "/perl5.36.0", "-e", `print "PERL-RAN\n"`}
		}, []string{`is the same file as "perl" in commands.blocked`}},
		"deny/hard-link-to-blocked-by-path": {"  blocked: [/usr/bin/perl]\n", func(*execWorld) []string {
			return []string{td + "/perl5.36.0", "-e", `print "PERL-RAN\n"`}
		}, []string{`is the same file as "perl" in commands.blocked`}},
		"deny/shebang-interpreter-not-allowed": {"  allowed: [" + td + "/tool]\n", func(*execWorld) []string {
			return []string{td + "/tool"}
		}, []string{`interpreter "dash" (of a #! script) is not in commands.allowed`, `interpreter "sh" (of a #! script) is not in commands.allowed`}},
		"deny/env-shebang-blocked": {"  blocked: [perl]\n", func(*execWorld) []string {
			return []string{td + "/penv"}
		}, []string{`command "perl" is in commands.blocked`}},
		"deny/env-shebang-not-allowed": {"  allowed: [" + td + "/penv]\n", func(*execWorld) []string {
			return []string{td + "/penv"}
		}, []string{`interpreter "perl" (of a #! script) is not in commands.allowed`}},
		"deny/env-shebang-options": {"  allowed: [" + td + "/penv-opts, perl]\n", func(*execWorld) []string {
			return []string{td + "/penv-opts"}
		}, []string{"options to env in a #! line"}},
		"deny/shebang-relative": {"  blocked: []\n", func(*execWorld) []string {
			return []string{td + "/relative"}
		}, []string{`#! interpreter "sh" is not an absolute path`}},
		"deny/shebang-loop": {"  blocked: []\n", func(*execWorld) []string {
			return []string{td + "/loop"}
		}, []string{"nested #! interpreters"}},
		"deny/bare-name-outside-system-dirs": {"  allowed: [tool, sh, dash]\n", func(*execWorld) []string {
			return []string{td + "/tool"}
		}, []string{"is not in a system directory"}},
	} {
		t.Run(name, func(t *testing.T) {
			w := newTrustWorld(t, tc.commands)
			argv := tc.setup(w)
			res, err := w.cmds.Exec(w.ctx(t), argv, plugin.ExecOptions{Dir: w.ws})
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (stdout %q), want a denial", err, resStdout(res))
			}
			for _, r := range tc.reasons {
				if !strings.Contains(de.Error(), r) {
					t.Errorf("denial %q does not say %q", de.Error(), r)
				}
			}
			if !strings.Contains(w.audit.String(), `"result":"deny"`) {
				t.Error("no audited denial")
			}
		})
	}

	// What the rules allow, runs.
	for name, tc := range map[string]struct {
		commands string
		argv     []string
		want     string
	}{
		"allow/shebang-interpreter-allowed":     {"  allowed: [" + td + "/tool, sh, dash]\n", []string{td + "/tool"}, "TOOL-RAN"},
		"allow/env-shebang-interpreter-allowed": {"  allowed: [" + td + "/penv, perl]\n", []string{td + "/penv"}, "PERL-RAN"},
		"allow/absolute-entry":                  {"  allowed: [/usr/bin/echo]\n", []string{"echo", "hi"}, "hi"},
	} {
		t.Run(name, func(t *testing.T) {
			w := newTrustWorld(t, tc.commands)
			res, err := w.cmds.Exec(w.ctx(t), tc.argv, plugin.ExecOptions{Dir: w.ws})
			if err != nil || !strings.Contains(string(res.Stdout), tc.want) {
				t.Fatalf("err = %v stdout %q stderr %q", err, resStdout(res), resStderr(res))
			}
		})
	}
}

func resStdout(r *plugin.ExecResult) string {
	if r == nil {
		return ""
	}
	return string(r.Stdout)
}

func resStderr(r *plugin.ExecResult) string {
	if r == nil {
		return ""
	}
	return string(r.Stderr)
}

// The sandbox holds what the decision cannot see: files outside the
// allowed paths, programs an allowed one starts.
func TestExecSandbox(t *testing.T) {
	if s := sandbox.Probe(); !s.Confines() {
		t.Skipf("kernel lacks Landlock confinement: %s", s.Reason)
	}
	w := newTrustWorld(t, "  allowed: [cat, git]\n")
	ctx := w.ctx(t)
	res, err := w.cmds.Exec(ctx, []string{"cat", w.outside + "/secret.txt"}, plugin.ExecOptions{Dir: w.ws})
	if err != nil || res.ExitCode == 0 || strings.Contains(string(res.Stdout), outsideSecret) || !strings.Contains(string(res.Stderr), "Permission denied") {
		t.Errorf("deny/read-outside: %v %+v", err, res)
	}
	res, err = w.cmds.Exec(ctx, []string{"cat", w.ws + "/notes.txt"}, plugin.ExecOptions{Dir: w.ws})
	if err != nil || string(res.Stdout) != allowedText {
		t.Errorf("allow/read-inside: %v %+v", err, res)
	}
	marker := w.ws + "/alias-ran"
	res, err = w.cmds.Exec(ctx, []string{"git", "-c", "alias.x=!id > " + marker + "; curl -s http://127.0.0.1:1/", "x"}, plugin.ExecOptions{Dir: w.ws})
	if err != nil {
		t.Fatalf("git: %v", err)
	}
	if _, serr := os.Stat(marker); serr == nil || strings.Contains(string(res.Stdout), "uid=") || res.ExitCode == 0 {
		t.Errorf("deny/git-alias-shell: the alias ran: %+v", res)
	}
	if !strings.Contains(string(res.Stderr), "Permission denied") {
		t.Errorf("git did not meet the sandbox: %s", res.Stderr)
	}
}

func TestExecGitRunsConfined(t *testing.T) {
	w := newTrustWorld(t, "  allowed: [git]\n")
	if _, err := w.cmds.Exec(w.ctx(t), []string{"git", "--version"}, plugin.ExecOptions{Dir: w.ws}); err != nil {
		t.Fatalf("git --version: %v", err)
	}
}

func BenchmarkExecTrue(b *testing.B) {
	w := newFSWorld(b)
	pol, err := policy.Parse("b.yaml", w.dir, []byte(fmt.Sprintf("filesystem:\n  allowed_paths: [\"%s/**\"]\ncommands:\n  allowed: [\"true\"]\n  blocked: [curl, wget, ssh, scp, rsync, nc, netcat, ncat, socat, telnet, ftp, sftp, sudo, su, doas, rm, dd, mkfs, shred, chmod, chown, shutdown, reboot]\n", w.ws)), nil)
	if err != nil {
		b.Fatal(err)
	}
	eng := engineFor(b, pol)
	files := NewFiles(eng, auditTo(w.audit), &FilesOptions{Roots: pol.Roots()})
	for _, mode := range []struct {
		name       string
		unconfined bool
	}{{"sandboxed", false}, {"unconfined", true}} {
		cmds := NewCommands(eng, auditTo(w.audit), files, &CommandsOptions{Allowed: pol.Commands.Allowed, Blocked: pol.Commands.Blocked, Unconfined: mode.unconfined})
		b.Run("exec/"+mode.name, func(b *testing.B) {
			for b.Loop() {
				w.audit.Reset()
				if _, err := cmds.Exec(b.Context(), []string{"true"}, plugin.ExecOptions{Dir: w.ws}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("check/"+mode.name, func(b *testing.B) {
			for b.Loop() {
				w.audit.Reset()
				if _, err := cmds.Check(b.Context(), []string{"true"}, w.ws); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzShebang(f *testing.F) {
	for _, seed := range []string{"#!/bin/sh\n", "#!/usr/bin/env python3\n", "#! /bin/bash -e\r\n", "#!\tperl\t-w\n", "#!", "#!/x " + strings.Repeat("a", 300), "\x7fELF", ""} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "script")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		interp, arg, ok, err := shebang(p)
		if !ok && (interp != "" || arg != "" || err != nil) {
			t.Fatalf("not a script but got %q %q %v", interp, arg, err)
		}
		if ok && err == nil && (!filepath.IsAbs(interp) || strings.ContainsAny(interp, " \t\n")) {
			t.Fatalf("interpreter %q from %q", interp, data)
		}
		if strings.Contains(arg, "\n") {
			t.Fatalf("argument %q crosses the line", arg)
		}
	})
}
