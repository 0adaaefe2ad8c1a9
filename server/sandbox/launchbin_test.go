//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTrustedExecutable(t *testing.T) {
	const me = 1000
	for _, c := range []struct {
		name string
		mode uint32
		uid  uint32
		want string // "" when trusted, else part of the error
	}{
		{"allow/root-0755", unix.S_IFREG | 0o755, 0, ""},
		{"allow/own-0700", unix.S_IFREG | 0o700, me, ""},
		{"allow/own-0555", unix.S_IFREG | 0o555, me, ""},
		{"deny/group-writable", unix.S_IFREG | 0o775, 0, "writable by group or others"},
		{"deny/world-writable", unix.S_IFREG | 0o757, me, "writable by group or others"},
		{"deny/other-owner", unix.S_IFREG | 0o755, 4242, "owned by uid 4242"},
		{"deny/not-executable", unix.S_IFREG | 0o644, 0, "not executable"},
		{"deny/directory", unix.S_IFDIR | 0o755, 0, "not a regular file"},
		{"deny/fifo", unix.S_IFIFO | 0o755, 0, "not a regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := trustedExecutable(unix.Stat_t{Mode: c.mode, Uid: c.uid}, me)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// copyLauncher writes this test binary, a launcher like any binary that
// imports the package, to dir/name with mode.
func copyLauncher(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindLauncher(t *testing.T) {
	self := selfLauncher("").desc
	for _, c := range []struct {
		name     string
		setup    func(t *testing.T, path string)
		separate bool
		desc     string // part of the description
	}{
		{"self/absent", func(*testing.T, string) {}, false, self},
		// Executed through its pinned descriptor, which is closed on
		// exec, a script cannot be read by its interpreter: the launcher
		// must be a binary.
		{"self/script", func(t *testing.T, p string) {
			os.WriteFile(p, []byte("#!/bin/sh\necho "+launcherProtocol+"\n"), 0o755)
		}, false, "not used: probe: exit status"},
		{"self/not-elf", func(t *testing.T, p string) {
			os.WriteFile(p, []byte("garbage"), 0o755)
		}, false, "not used: probe:"},
		{"self/group-writable", func(t *testing.T, p string) {
			copyLauncher(t, filepath.Dir(p), filepath.Base(p), 0o775)
		}, false, "writable by group or others"},
		{"self/directory", func(t *testing.T, p string) { os.Mkdir(p, 0o755) }, false, "not a regular file"},
		{"separate/copy", func(t *testing.T, p string) {
			copyLauncher(t, filepath.Dir(p), filepath.Base(p), 0o755)
		}, true, "/" + LauncherName},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), LauncherName)
			c.setup(t, path)
			l := findLauncher(path)
			if l.pinned >= 0 {
				defer unix.Close(l.pinned)
			}
			if got := l.path != "/proc/self/exe"; got != c.separate {
				t.Fatalf("separate launcher used: %v, want %v (%s)", got, c.separate, l.desc)
			}
			if !strings.Contains(l.desc, c.desc) {
				t.Fatalf("description %q, want it to hold %q", l.desc, c.desc)
			}
			if c.separate && l.desc != path {
				t.Fatalf("description %q, want %q", l.desc, path)
			}
		})
	}
}

// TestSeparateLauncherRuns: a target starts through the separate
// launcher, confined as through the server's own binary, and the file
// checked at start is the one run, whatever later takes its path.
func TestSeparateLauncherRuns(t *testing.T) {
	dir := t.TempDir()
	path := copyLauncher(t, dir, LauncherName, 0o755)
	l := findLauncher(path)
	if l.pinned < 0 {
		t.Fatalf("launcher not used: %s", l.desc)
	}
	defer unix.Close(l.pinned)
	// The path now names something else entirely.
	os.Remove(path)
	os.WriteFile(path, []byte("#!/bin/sh\nexit 9\n"), 0o755)

	b := newBox(t, "/usr/bin/cat", "/usr/bin/sleep")
	os.WriteFile(filepath.Join(b.dir, "in.txt"), []byte("inside"), 0o644)
	run := func(ctx context.Context, argv ...string) *Cmd {
		return commandWith(ctx, Target{Path: argv[0], Args: argv, Dir: b.dir, Rules: b.rule, Unconfined: !Probe().Confines()}, l)
	}
	c := run(t.Context(), "/usr/bin/cat", "in.txt")
	var out bytes.Buffer
	c.Stdout = &out
	if err := c.Run(); err != nil || out.String() != "inside" {
		t.Fatalf("allow/read-workspace: %q %v", out.String(), err)
	}
	if Probe().Confines() {
		c = run(t.Context(), "/usr/bin/cat", "/etc/hostname")
		c.Stderr = io.Discard
		var exit interface{ ExitCode() int }
		if err := c.Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("deny/read-outside: %v", err)
		}
	}

	// The launcher process is the pinned copy.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c = run(ctx, "/usr/bin/sleep", "30")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid()) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(argv) != 4 || argv[0] != LauncherName || argv[1] != launcherArg || argv[2] != launcherProtocol || argv[3] != filterTCPOnly {
		t.Errorf("launcher argv %q", argv)
	}
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid()) + "/comm"); err != nil || strings.TrimSpace(string(comm)) != LauncherName[:15] {
		t.Errorf("launcher process name %q (%v), want %q", comm, err, LauncherName[:15])
	}
	// Reading a non-dumpable process's exe link takes CAP_SYS_PTRACE:
	// root (as in CI) sees which file runs.
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(c.Pid()) + "/exe"); err == nil {
		if exe != path+" (deleted)" {
			t.Errorf("launcher runs %q, want the pinned %q (deleted)", exe, path)
		}
	} else if os.Geteuid() == 0 {
		t.Errorf("reading the launcher's exe as root: %v", err)
	}
	cancel()
	if err := c.Wait(); err == nil {
		t.Error("a cancelled target exited 0")
	}
}

// TestLauncherRefusesOtherProtocol: a launcher asked for another
// protocol fails before starting anything, and says why.
func TestLauncherRefusesOtherProtocol(t *testing.T) {
	l := selfLauncher("")
	c := commandWith(t.Context(), Target{Path: "/usr/bin/true", Args: []string{"/usr/bin/true"}, Unconfined: true}, l)
	c.cmd.Args[2] = "mcp-secure-launch/0"
	err := c.Run()
	var setup *SetupError
	if !errors.As(err, &setup) || !strings.Contains(setup.Msg, "the server asked for") {
		t.Fatalf("got %v, want a setup error naming the protocol", err)
	}
}

// TestStuckLauncherFailsTheStart: a launcher that neither starts its
// target nor says why within launchWait (alive, holding the report pipe)
// fails the start, and is killed with its group.
func TestStuckLauncherFailsTheStart(t *testing.T) {
	defer func(d time.Duration) { launchWait = d }(launchWait)
	launchWait = 300 * time.Millisecond
	script := filepath.Join(t.TempDir(), "stuck")
	// sleep inherits the report pipe and keeps it open.
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := commandWith(t.Context(), Target{Path: "/usr/bin/true", Args: []string{"/usr/bin/true"}, Unconfined: true},
		launcherExe{path: script, argv0: script, pinned: -1})
	err := c.Start()
	if err == nil || !strings.Contains(err.Error(), "did not start its target") {
		t.Fatalf("Start of a stuck launcher: %v", err)
	}
	ps := c.cmd.ProcessState
	if ps == nil {
		t.Fatal("the stuck launcher was not reaped")
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the stuck launcher ended as %v, want killed", ps)
	}
	// Its group (the sleep it became) is gone too.
	if err := syscall.Kill(-ps.Pid(), 0); err != syscall.ESRCH {
		t.Errorf("the stuck launcher's group is still there: %v", err)
	}
}
