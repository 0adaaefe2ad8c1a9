//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	RunIfLauncher()
	switch os.Getenv("SANDBOX_TEST_HELPER") {
	case "orphan":
		os.Exit(helperServer())
	case "net":
		os.Exit(netProbe())
	}
	if s := Probe(); !s.Confines() {
		fmt.Fprintf(os.Stderr, "sandbox tests: Landlock confinement unavailable (%s); confined cases skip\n", s.Reason)
	}
	os.Exit(m.Run())
}

func needLandlock(t *testing.T) {
	t.Helper()
	if s := Probe(); !s.Confines() {
		t.Skipf("kernel lacks Landlock confinement: %s", s.Reason)
	}
}

type box struct {
	dir  string
	rule Rules
}

func newBox(t *testing.T, programs ...string) *box {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &box{dir: dir, rule: Rules{
		ReadWrite: append([]string{dir}, SystemReadWrite...),
		ReadOnly:  SystemReadOnly,
		Exec:      Executables(programs...),
	}}
}

func (b *box) run(t *testing.T, ctx context.Context, argv ...string) (stdout, stderr string, code int, err error) {
	t.Helper()
	// Cases that need Landlock skip without it; the rest run unconfined.
	c := Command(ctx, Target{Path: argv[0], Args: argv, Env: []string{"PATH=/usr/bin:/bin"}, Dir: b.dir, Rules: b.rule, Unconfined: !Probe().Confines()})
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err = c.Run()
	return o.String(), e.String(), c.ExitCode(), err
}

func TestConfinedRuns(t *testing.T) {
	needLandlock(t)
	b := newBox(t, "/usr/bin/sh", "/usr/bin/cat")
	os.WriteFile(filepath.Join(b.dir, "in.txt"), []byte("inside"), 0o644)
	out, _, code, err := b.run(t, t.Context(), "/usr/bin/cat", "in.txt")
	if err != nil || code != 0 || out != "inside" {
		t.Fatalf("allow/read-workspace: %q %d %v", out, code, err)
	}
	_, _, code, err = b.run(t, t.Context(), "/usr/bin/sh", "-c", "echo made > new.txt; exit 3")
	if code != 3 || err == nil {
		t.Errorf("allow/exit-code: %d %v", code, err)
	}
	if data, _ := os.ReadFile(filepath.Join(b.dir, "new.txt")); string(data) != "made\n" {
		t.Errorf("allow/write-workspace: %q", data)
	}
}

func TestConfinedDenies(t *testing.T) {
	needLandlock(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	os.WriteFile(secret, []byte("outside-secret"), 0o644)
	b := newBox(t, "/usr/bin/sh", "/usr/bin/cat")
	for name, argv := range map[string][]string{
		"deny/read-outside":  {"/usr/bin/cat", secret},
		"deny/read-etc":      {"/usr/bin/cat", "/etc/hostname"},
		"deny/write-outside": {"/usr/bin/sh", "-c", "echo x > " + outside + "/planted"},
		"deny/exec-unlisted": {"/usr/bin/sh", "-c", "/usr/bin/id"},
	} {
		t.Run(name, func(t *testing.T) {
			out, stderr, code, _ := b.run(t, t.Context(), argv...)
			if code == 0 || strings.Contains(out, "outside-secret") || strings.Contains(out, "uid=") {
				t.Errorf("ran: code %d out %q err %q", code, out, stderr)
			}
			if !strings.Contains(stderr, "ermission denied") {
				t.Errorf("stderr = %q, want a permission error", stderr)
			}
		})
	}
	if _, err := os.Stat(outside + "/planted"); err == nil {
		t.Error("a write outside the box landed")
	}
}

// A program in the read-write directory, executable by its mode, does
// not run: read-write never includes execute. Listed in Exec, the same
// file runs, so the refusal is the rule's and not the file's.
func TestConfinedDeniesExecFromWorkDir(t *testing.T) {
	needLandlock(t)
	b := newBox(t, "/usr/bin/sh")
	prog, err := os.ReadFile("/usr/bin/cat")
	if err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(b.dir, "mine")
	if err := os.WriteFile(mine, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "in.txt"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code, _ := b.run(t, t.Context(), "/usr/bin/sh", "-c", "./mine in.txt")
	if code == 0 || strings.Contains(out, "inside") || !strings.Contains(stderr, "ermission denied") {
		t.Errorf("deny/exec-from-work-dir: code %d out %q err %q", code, out, stderr)
	}
	b.rule.Exec = append(b.rule.Exec, Executables(mine)...)
	out, stderr, code, _ = b.run(t, t.Context(), "/usr/bin/sh", "-c", "./mine in.txt")
	if code != 0 || out != "inside" {
		t.Errorf("allow/exec-listed: code %d out %q err %q", code, out, stderr)
	}
}

// greeter listens on a loopback port and writes hello to every
// connection; it returns the port.
func greeter(t *testing.T, hello string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(hello + "\n"))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestConfinedTCP(t *testing.T) {
	needLandlock(t)
	port, other := greeter(t, "hello-from-listener"), greeter(t, "hello-from-other")
	dial := func(port int) string { return fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && cat <&3", port) }
	b := newBox(t, "/usr/bin/bash", "/usr/bin/cat")
	out, stderr, code, _ := b.run(t, t.Context(), "/usr/bin/bash", "-c", dial(port))
	if code == 0 || strings.Contains(out, "hello-from-listener") || !strings.Contains(stderr, "ermission denied") {
		t.Errorf("deny/connect-unlisted-port: code %d out %q err %q", code, out, stderr)
	}
	b.rule.ConnectTCP = []uint16{uint16(port)}
	out, stderr, code, _ = b.run(t, t.Context(), "/usr/bin/bash", "-c", dial(port))
	if code != 0 || !strings.Contains(out, "hello-from-listener") {
		t.Errorf("allow/connect-listed-port: code %d out %q err %q", code, out, stderr)
	}
	// With one port listed, another port that listens too is refused by
	// the sandbox (not by an empty port).
	out, stderr, code, _ = b.run(t, t.Context(), "/usr/bin/bash", "-c", dial(other))
	if code == 0 || strings.Contains(out, "hello-from-other") || !strings.Contains(stderr, "ermission denied") {
		t.Errorf("deny/connect-other-port: code %d out %q err %q", code, out, stderr)
	}
}

func TestSetupErrorsAreReported(t *testing.T) {
	b := newBox(t)
	_, _, _, err := b.run(t, t.Context(), "/nonexistent/prog")
	var se *SetupError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "exec /nonexistent/prog") {
		t.Errorf("err = %v, want a setup error naming exec", err)
	}
}

func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL) // the test started it
	t.Errorf("process %d outlived its sandbox", pid)
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	for range 250 {
		data, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

// An escaped grandchild (setsid, double fork) dies when the target exits.
func TestNoDescendantOutlivesTheTarget(t *testing.T) {
	b := newBox(t, "/usr/bin/sh", "/usr/bin/setsid", "/usr/bin/sleep")
	pidFile := filepath.Join(b.dir, "pid")
	done := make(chan error, 1)
	var out string
	go func() {
		// The grandchild is seen alive before the target exits, so that
		// its absence afterwards is the launcher's doing.
		o, _, _, err := b.run(t, t.Context(), "/usr/bin/sh", "-c", "(setsid sleep 311 & echo $! > "+pidFile+") ; read p < "+pidFile+"; sleep 0.2; kill -0 $p && echo alive; exit 0")
		out = o
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run waited for the escaped child")
	}
	if !strings.Contains(out, "alive") {
		t.Fatalf("the grandchild was not running before the target exited: %q", out)
	}
	waitGone(t, readPid(t, pidFile), 5*time.Second)
}

func TestCancelKillsTheTree(t *testing.T) {
	b := newBox(t, "/usr/bin/sh", "/usr/bin/setsid", "/usr/bin/sleep")
	pidFile := filepath.Join(b.dir, "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, _, code, err := b.run(t, ctx, "/usr/bin/sh", "-c", "setsid sleep 312 & echo $! > "+pidFile+"; wait")
		done <- result{code, err}
	}()
	pid := readPid(t, pidFile) // the tree is up: cancel it
	cancel()
	// Without the cancel, Run waits for sleep 312.
	select {
	case r := <-done:
		if r.err == nil {
			t.Errorf("Run after cancel: exit %d and no error, want the target killed", r.code)
		}
	case <-time.After(time.Minute): // a hang guard, not a speed bound
		t.Fatal("Run did not return after cancel")
	}
	waitGone(t, pid, 5*time.Second)
}

// helperServer plays a server that starts a sandboxed child and is then
// killed with SIGKILL by the test.
func helperServer() int {
	dir := os.Getenv("SANDBOX_TEST_DIR")
	c := Command(context.Background(), Target{
		Path: "/usr/bin/sh", Args: []string{"sh", "-c", "setsid sleep 313 & echo $! > " + dir + "/pid; wait"},
		Dir: dir, Unconfined: os.Getenv("SANDBOX_TEST_UNCONFINED") == "1",
		Rules: Rules{ReadWrite: append([]string{dir}, SystemReadWrite...), ReadOnly: SystemReadOnly, Exec: Executables("/usr/bin/sh", "/usr/bin/setsid", "/usr/bin/sleep")},
	})
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err := c.Wait()
	fmt.Fprintln(os.Stderr, "helper: child ended:", err)
	return 0
}

func TestServerDeathKillsTheTree(t *testing.T) {
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	helper := exec.Command("/proc/self/exe", "-test.run=^$")
	helper.Env = append(os.Environ(), "SANDBOX_TEST_HELPER=orphan", "SANDBOX_TEST_DIR="+dir)
	if !Probe().Confines() {
		helper.Env = append(helper.Env, "SANDBOX_TEST_UNCONFINED=1")
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	if !alive(pid) {
		t.Fatal("the grandchild is not running")
	}
	helper.Process.Kill()
	helper.Wait()
	waitGone(t, pid, 5*time.Second)
}

func TestUnconfinedRuns(t *testing.T) {
	if Probe().Confines() {
		t.Log("Landlock is available here; checking only that Unconfined is honoured")
	}
	b := newBox(t, "/usr/bin/cat")
	c := Command(t.Context(), Target{Path: "/usr/bin/cat", Args: []string{"cat", "/etc/hostname"}, Dir: b.dir, Unconfined: true})
	var o bytes.Buffer
	c.Stdout = &o
	if err := c.Run(); err != nil || o.Len() == 0 {
		t.Errorf("unconfined run: %v %q", err, o.String())
	}
}

func BenchmarkTrue(b *testing.B) {
	dir := b.TempDir()
	rules := Rules{ReadWrite: []string{dir}, ReadOnly: SystemReadOnly, Exec: Executables("/usr/bin/true")}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/usr/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sandboxed", func(b *testing.B) {
		if !Probe().Confines() {
			b.Skip("no Landlock")
		}
		for b.Loop() {
			if err := Command(context.Background(), Target{Path: "/usr/bin/true", Args: []string{"true"}, Dir: dir, Rules: rules}).Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("launcher-unconfined", func(b *testing.B) {
		for b.Loop() {
			if err := Command(context.Background(), Target{Path: "/usr/bin/true", Args: []string{"true"}, Dir: dir, Unconfined: true}).Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestLimits(t *testing.T) {
	b := newBox(t, "/usr/bin/sh", "/usr/bin/head")
	c := Command(t.Context(), Target{
		Path: "/usr/bin/sh", Args: []string{"sh", "-c", "ulimit -n; ulimit -c; ulimit -t; head -c 2000000 /dev/zero > big"},
		Dir: b.dir, Rules: b.rule, Limits: Limits{FileSize: 1 << 20, CPU: 7 * time.Second},
		Unconfined: !Probe().Confines(),
	})
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	c.Run()
	if got := strings.Fields(o.String()); len(got) != 3 || got[0] != "1024" || got[1] != "0" || got[2] != "7" {
		t.Errorf("limits seen by the child: %q (want 1024 open files, no core, 7 s CPU)", o.String())
	}
	if st, err := os.Stat(filepath.Join(b.dir, "big")); err != nil || st.Size() > 1<<20 {
		t.Errorf("file size limit: %v %v", st.Size(), err)
	}
	if c.ExitCode() == 0 {
		t.Error("writing past RLIMIT_FSIZE succeeded")
	}
}

func TestSignalsScoped(t *testing.T) {
	needLandlock(t)
	if Probe().ABI < 6 {
		t.Skipf("Landlock ABI %d has no signal scoping", Probe().ABI)
	}
	b := newBox(t, "/usr/bin/sh")
	_, stderr, code, _ := b.run(t, t.Context(), "/usr/bin/sh", "-c", fmt.Sprintf("kill -0 %d", os.Getpid()))
	if code == 0 || !strings.Contains(stderr, "not permitted") {
		t.Errorf("a confined child signalled the test process: exit %d %q", code, stderr)
	}
	_, stderr, code, _ = b.run(t, t.Context(), "/usr/bin/sh", "-c", "kill -0 $$")
	if code != 0 {
		t.Errorf("a confined child cannot signal itself: %q", stderr)
	}
}

func TestNoCapabilities(t *testing.T) {
	b := newBox(t, "/usr/bin/grep")
	c := Command(t.Context(), Target{Path: "/usr/bin/grep", Args: []string{"grep", "^Cap", "/proc/self/status"}, Dir: b.dir, Unconfined: true})
	var o bytes.Buffer
	c.Stdout = &o
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if set == "CapBnd" && os.Geteuid() != 0 {
			continue // only root may empty the bounding set; without caps it does not matter
		}
		if !strings.Contains(o.String(), set+":\t0000000000000000") {
			t.Errorf("%s not empty:\n%s", set, o.String())
		}
	}
}

func TestConfinedBindAndAbstractSockets(t *testing.T) {
	needLandlock(t)
	py, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Fatal("python3 opens the sockets of this test (.ci/run installs it):", err)
	}
	b := newBox(t, py)
	b.rule.ReadOnly = append(b.rule.ReadOnly, "/usr/lib") // the standard library
	out, stderr, code, _ := b.run(t, t.Context(), py, "-c", "import socket; s = socket.socket(); print('ready', flush=True); s.bind(('127.0.0.1', 0)); print('bound')")
	if code == 0 || out != "ready\n" || !strings.Contains(stderr, "PermissionError") {
		t.Errorf("deny/tcp-bind: exit %d %q %q", code, out, stderr)
	}
	if Probe().ABI < 6 {
		return
	}
	// An abstract unix socket outside the sandbox is out of reach: the
	// socket filter refuses the unix socket (Landlock's scope would
	// refuse the connect).
	name := "mcp-secure-sandbox-test-" + strconv.Itoa(os.Getpid())
	ln, err := net.Listen("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	script := "import socket; s = socket.socket(socket.AF_UNIX); print('ready', flush=True); s.connect('\\0" + name + "'); print('connected')"
	out, stderr, code, _ = b.run(t, t.Context(), py, "-c", script)
	if code == 0 || strings.Contains(out, "connected") || !strings.Contains(stderr, "PermissionError") {
		t.Errorf("deny/abstract-unix-connect: exit %d %q %q", code, out, stderr)
	}
	// The same connect, outside the sandbox, reaches the socket.
	o, err := exec.CommandContext(t.Context(), py, "-c", script).Output()
	if err != nil || string(o) != "ready\nconnected\n" {
		t.Errorf("allow/abstract-unix-connect-unsandboxed: %v %q", err, o)
	}
}

// reaperBox makes this process the subreaper of what it starts, for the
// test, and returns a box with a shell, setsid, sleep and kill, and the
// file its target writes a pid to.
func reaperBox(t *testing.T) (*box, string) {
	t.Helper()
	if err := BecomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		reaper.on.Store(false)
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	})
	b := newBox(t, "/usr/bin/sh", "/usr/bin/setsid", "/usr/bin/sleep", "/usr/bin/kill")
	return b, filepath.Join(b.dir, "pid")
}

// A target that kills its launcher (same user, same Landlock domain)
// orphans what it started; the server, their subreaper, sweeps them once
// it has reaped the launcher.
func TestKilledLauncherLeavesNothing(t *testing.T) {
	b, pidFile := reaperBox(t)
	done := make(chan error, 1)
	go func() {
		_, _, _, err := b.run(t, t.Context(), "/usr/bin/sh", "-c", "setsid sleep 317 </dev/null >/dev/null 2>&1 & echo $! > "+pidFile+"; sleep 0.1; kill -KILL $PPID; sleep 30")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run of a target that killed its launcher: no error")
		}
	case <-time.After(time.Minute): // a hang guard, not a speed bound
		t.Fatal("Run did not return after the launcher was killed")
	}
	waitGone(t, readPid(t, pidFile), 5*time.Second)
}

// A target that stops its launcher cannot grow its tree past the count
// or outlive its deadline while the launcher is stopped: the server,
// the launcher's parent, kills a stopped launcher, and what it left is
// swept.
func TestStoppedLauncherIsKilled(t *testing.T) {
	b, pidFile := reaperBox(t)
	// The deadline is far: without the watch, Run would end only there.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, _, _, err := b.run(t, ctx, "/usr/bin/sh", "-c", "setsid sleep 318 </dev/null >/dev/null 2>&1 & echo $! > "+pidFile+"; sleep 0.1; kill -STOP $PPID; sleep 300")
	if !errors.Is(err, ErrLauncherStopped) {
		t.Errorf("Run of a target that stopped its launcher: %v, want %v", err, ErrLauncherStopped)
	}
	waitGone(t, readPid(t, pidFile), 5*time.Second)
}
