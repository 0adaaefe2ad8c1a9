//go:build unix

package guard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// execWorld adds a command guard to an fsWorld whose policy blocks curl,
// nc and netcat, and a bin directory with fake executables.
type execWorld struct {
	*fsWorld
	cmds *Commands
	bin  string
}

func newExecWorld(t *testing.T, extraPolicy string) *execWorld {
	t.Helper()
	w := newFSWorld(t)
	src := fmt.Sprintf(`filesystem:
  allowed_paths: ["%s/**"]
  denied_paths: ["**/.env"]
commands:
  blocked: [curl, nc, netcat, wget]
%s`, w.ws, extraPolicy)
	pol, err := policy.Parse("exec.yaml", w.dir, []byte(src), func(k string) (string, bool) { return "/h", k == "HOME" })
	if err != nil {
		t.Fatal(err)
	}
	eng := engineFor(t, pol)
	w.files = NewFiles(eng, auditTo(w.audit), &FilesOptions{Roots: pol.Roots()})
	ew := &execWorld{fsWorld: w, cmds: NewCommands(eng, auditTo(w.audit), w.files, &CommandsOptions{Allowed: pol.Commands.Allowed, Blocked: pol.Commands.Blocked, Unconfined: noLandlock(t)}), bin: filepath.Join(w.dir, "bin")}
	os.MkdirAll(ew.bin, 0o755)
	// Fake executables: a "curl" that would print a secret, and links to it.
	ew.script(t, "curl", "#!/bin/sh\necho CURL-RAN\n")
	ew.script(t, "CURL", "#!/bin/sh\necho CURL-RAN\n")
	os.Symlink(filepath.Join(ew.bin, "curl"), filepath.Join(ew.bin, "innocent"))
	ew.script(t, "netcat", "#!/bin/sh\necho NC-RAN\n")
	os.Symlink(filepath.Join(ew.bin, "netcat"), filepath.Join(ew.bin, "nc"))
	return ew
}

// noLandlock reports (and says) that children run unconfined in this
// test because the kernel cannot confine them.
func noLandlock(t testing.TB) bool {
	if s := sandbox.Probe(); !s.Confines() {
		t.Logf("kernel lacks Landlock confinement (%s): children run unconfined", s.Reason)
		return true
	}
	return false
}

func (w *execWorld) script(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.bin, name), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestExecDecisions(t *testing.T) {
	w := newExecWorld(t, "")
	ctx := w.ctx(t)
	for name, tc := range map[string]struct {
		argv   []string
		reason string
	}{
		"deny/blocked":               {[]string{w.bin + "/curl", "http://127.0.0.1/"}, `command "curl" is in commands.blocked`},
		"deny/upper-case-name":       {[]string{w.bin + "/CURL"}, `command "curl" is in commands.blocked`},
		"deny/symlink-to-blocked":    {[]string{w.bin + "/innocent"}, `command "curl" is in commands.blocked`},
		"deny/nc-resolves-to-netcat": {[]string{w.bin + "/nc", "-l"}, `command "netcat" is in commands.blocked`},
		"deny/quoting-is-literal":    {[]string{"cu''rl"}, "no executable found"},
		"deny/shell-metachar-name":   {[]string{"ls;curl"}, "no executable found"},
		"deny/relative-with-slash":   {[]string{"./curl"}, "absolute path or a bare name"},
		"deny/empty-argv":            {nil, "argv is empty"},
		"deny/nul-in-argument":       {[]string{"echo", "a\x00b"}, "NUL byte"},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := w.cmds.Exec(ctx, tc.argv, plugin.ExecOptions{Dir: w.ws})
			var de *DeniedError
			if !errors.As(err, &de) || !strings.Contains(de.Error(), tc.reason) {
				t.Fatalf("err = %v, want a denial saying %q", err, tc.reason)
			}
			if res != nil && strings.Contains(string(res.Stdout), "RAN") {
				t.Error("the blocked command ran")
			}
		})
	}
}

func TestExecRuns(t *testing.T) {
	w := newExecWorld(t, "")
	ctx := w.ctx(t)
	t.Setenv("MCP_TEST_PARENT_SECRET", "parent-secret-value")
	res, err := w.cmds.Exec(ctx, []string{"env"}, plugin.ExecOptions{Dir: w.ws, Env: map[string]string{"GREETING": "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Stdout)
	if strings.Contains(out, "parent-secret-value") || !strings.Contains(out, "GREETING=hi") || !strings.Contains(out, "PATH="+SafePath) {
		t.Errorf("child environment not scrubbed: %s", out)
	}
	res, err = w.cmds.Exec(ctx, []string{"pwd"}, plugin.ExecOptions{Dir: w.ws + "/sub"})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != w.ws+"/sub" {
		t.Errorf("cwd: %q %v", res.Stdout, err)
	}
	res, err = w.cmds.Exec(ctx, []string{"sh", "-c", "exit 3"}, plugin.ExecOptions{Dir: w.ws})
	if err != nil || res.ExitCode != 3 {
		t.Errorf("exit code: %+v %v", res, err)
	}
	res, err = w.cmds.Exec(ctx, []string{"head", "-c", "3000000", "/dev/zero"}, plugin.ExecOptions{Dir: w.ws})
	if err != nil || len(res.Stdout) != DefaultMaxOutput || !res.Truncated {
		t.Errorf("output cap: %d bytes truncated=%v err=%v", len(res.Stdout), res.Truncated, err)
	}
	res, err = w.cmds.Exec(ctx, []string{"cat"}, plugin.ExecOptions{Dir: w.ws, Stdin: []byte("piped"), MaxOutput: 3})
	if err != nil || string(res.Stdout) != "pip" || !res.Truncated {
		t.Errorf("stdin and small cap: %q %v", res.Stdout, err)
	}
}

func TestExecEnvironmentSmuggling(t *testing.T) {
	w := newExecWorld(t, "  allowed: [\"true\"]\n")
	// The same call with a harmless name runs: each refusal below is the
	// name's.
	if _, err := w.cmds.Exec(w.ctx(t), []string{"true"}, plugin.ExecOptions{Dir: w.ws, Env: map[string]string{"HARMLESS": "/tmp/evil.so"}}); err != nil {
		t.Fatalf("a harmless variable: %v", err)
	}
	for _, k := range []string{"LD_PRELOAD", "ld_library_path", "PATH", "BASH_ENV", "DYLD_INSERT_LIBRARIES", "BASH_FUNC_ls%%", "NODE_OPTIONS", "GIT_SSH_COMMAND",
		"HOME", "home", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_DIR", "SSH_ASKPASS", "XDG_CONFIG_HOME", "PYTHONWARNINGS", "OTEL_EXPORTER_OTLP_HEADERS", "MCP_SECURE_NO_LANDLOCK", "A=B", ""} {
		_, err := w.cmds.Exec(w.ctx(t), []string{"true"}, plugin.ExecOptions{Dir: w.ws, Env: map[string]string{k: "/tmp/evil.so"}})
		if !errors.Is(err, ErrDenied) {
			t.Errorf("env %q accepted: %v", k, err)
		} else if k != "" && !strings.Contains(err.Error(), k) {
			t.Errorf("env %q refused without naming it: %v", k, err)
		}
	}
}

func TestExecWorkingDirectoryMustBeAllowed(t *testing.T) {
	w := newExecWorld(t, "")
	for _, dir := range []string{w.outside, "/", "relative"} {
		if _, err := w.cmds.Exec(w.ctx(t), []string{"true"}, plugin.ExecOptions{Dir: dir}); !errors.Is(err, ErrDenied) {
			t.Errorf("dir %q: %v", dir, err)
		}
	}
	// A symlink out of the workspace is refused by the root it is opened in.
	if _, err := w.cmds.Exec(w.ctx(t), []string{"true"}, plugin.ExecOptions{Dir: w.ws + "/dir-out"}); err == nil {
		t.Error("ran in a directory reached through a symlink out of the workspace")
	}
	// The default working directory is an allowed root.
	res, err := w.cmds.Exec(w.ctx(t), []string{"pwd"}, plugin.ExecOptions{})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != w.ws {
		t.Errorf("default dir: %q %v", res.Stdout, err)
	}
}

func TestExecAllowlist(t *testing.T) {
	w := newExecWorld(t, "  allowed: [echo]\n")
	if _, err := w.cmds.Exec(w.ctx(t), []string{"echo", "ok"}, plugin.ExecOptions{Dir: w.ws}); err != nil {
		t.Errorf("allowed command: %v", err)
	}
	_, err := w.cmds.Exec(w.ctx(t), []string{"true"}, plugin.ExecOptions{Dir: w.ws})
	if err == nil || !strings.Contains(err.Error(), `command "true" is not in commands.allowed`) {
		t.Errorf("err = %v", err)
	}
}

func TestExecKillsProcessGroupAtDeadline(t *testing.T) {
	w := newExecWorld(t, "  allowed: [sh, dash, sleep]\n")
	pidFile := filepath.Join(w.ws, "child.pid")
	ctx, cancel := context.WithTimeout(w.ctx(t), 3*time.Second) // room for a loaded machine to start it
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := w.cmds.Exec(ctx, []string{"sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"}, plugin.ExecOptions{Dir: w.ws})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Exec did not return after its deadline")
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := mustPid(t, data)
	// The grandchild is gone (or a zombie awaiting its reaper).
	for range 100 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("grandchild %d survived the kill", pid)
}

func TestExecLeavesNoBackgroundChildren(t *testing.T) {
	w := newExecWorld(t, "  allowed: [sh, dash, sleep]\n")
	// The child is seen alive before the command exits, so that its
	// absence afterwards is Exec's doing.
	res, err := w.cmds.Exec(w.ctx(t), []string{"sh", "-c", "sleep 60 & p=$!; sleep 0.2; kill -0 $p || exit 9; echo $p"}, plugin.ExecOptions{Dir: w.ws})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("the background child was not running before the command exited: exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
	pid := mustPid(t, res.Stdout)
	for range 100 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("background child %d outlived Exec", pid)
}

func TestExecDoesNotWaitForEscapedChildren(t *testing.T) {
	w := newExecWorld(t, "  allowed: [setsid, sleep]\n")
	done := make(chan error, 1)
	go func() {
		_, err := w.cmds.Exec(w.ctx(t), []string{"setsid", "-f", "sleep", "30"}, plugin.ExecOptions{Dir: w.ws})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Exec waited for a child that left its process group")
	}
}

// mustPid reads the pid a command printed; anything but a positive number
// fails the test (pid 0 would make /proc/0 absent and the check pass).
func mustPid(t *testing.T, out []byte) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 0 {
		t.Fatalf("no pid in the command's output %q: %v", out, err)
	}
	return pid
}
