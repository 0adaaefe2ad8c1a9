//go:build linux

package sandbox

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pipedRun starts argv piped, writes in to its stdin and returns its
// output and the launcher's pid.
func (b *box) pipedRun(t *testing.T, ctx context.Context, in string, argv ...string) (stdout, stderr string, code, pid int, err error) {
	t.Helper()
	c := Piped(ctx, Target{Path: argv[0], Args: argv, Env: []string{"PATH=/usr/bin:/bin"}, Dir: b.dir, Rules: b.rule, Unconfined: !Probe().Confines()})
	if err := c.Start(); err != nil {
		return "", "", -1, 0, err
	}
	sin, sout, serr := c.Pipes()
	go func() { io.WriteString(sin, in); sin.Close() }()
	errc := make(chan string, 1)
	go func() { e, _ := io.ReadAll(serr); errc <- string(e) }()
	o, _ := io.ReadAll(sout)
	stderr = <-errc
	sout.Close()
	serr.Close()
	err = c.Wait()
	return string(o), stderr, c.ExitCode(), c.Pid(), err
}

// waitWarm waits for the warm launchers to be ready and returns the pid
// of the one the next piped start takes, leaving them in place.
func waitWarm(t *testing.T) int {
	t.Helper()
	for range 500 {
		if len(warm) == warmLaunchers && !refilling.Load() {
			var ws []*warmLauncher
			for range warmLaunchers {
				ws = append(ws, <-warm)
			}
			for _, w := range ws {
				warm <- w
			}
			return ws[0].cmd.Process.Pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no warm launchers were started after a piped start")
	return 0
}

func TestPipedRunsThroughAWarmLauncher(t *testing.T) {
	b := newBox(t, "/usr/bin/cat", "/usr/bin/sh")
	out, _, code, _, err := b.pipedRun(t, t.Context(), "first", "/usr/bin/cat")
	if err != nil || code != 0 || out != "first" {
		t.Fatalf("piped/cold: %q %d %v", out, code, err)
	}
	ready := waitWarm(t)
	out, errOut, code, pid, err := b.pipedRun(t, t.Context(), "second", "/usr/bin/sh", "-c", "cat; echo oops >&2; exit 5")
	if out != "second" || errOut != "oops\n" || code != 5 {
		t.Errorf("piped/warm: out %q err %q exit %d (%v)", out, errOut, code, err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Errorf("piped/warm: Wait = %v, want an exit error", err)
	}
	if pid != ready {
		t.Errorf("piped/warm: the target started through launcher %d, not the warm one %d", pid, ready)
	}
}

func TestPipedReplacesADeadWarmLauncher(t *testing.T) {
	b := newBox(t, "/usr/bin/cat")
	if _, _, _, _, err := b.pipedRun(t, t.Context(), "x", "/usr/bin/cat"); err != nil {
		t.Fatal(err)
	}
	// SIGTERM included: before it has its target, a launcher ends at
	// once on a signal, as it did before it handled signals.
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		dead := waitWarm(t)
		syscall.Kill(dead, sig)
		if !waitDead(dead) {
			t.Fatalf("%v: the waiting launcher %d did not end", sig, dead)
		}
		out, _, code, pid, err := b.pipedRun(t, t.Context(), "after", "/usr/bin/cat")
		if err != nil || code != 0 || out != "after" {
			t.Errorf("%v: piped/after-a-dead-warm-launcher: %q %d %v", sig, out, code, err)
		}
		if pid == dead {
			t.Errorf("%v: the target was handed to the dead launcher %d", sig, pid)
		}
	}
}

func TestPipedCancelKillsTheTree(t *testing.T) {
	b := newBox(t, "/usr/bin/sh", "/usr/bin/sleep")
	// A warm launcher for this call, then a cancelled call through it.
	if _, _, _, _, err := b.pipedRun(t, t.Context(), "", "/usr/bin/sleep", "0"); err != nil {
		t.Fatal(err)
	}
	waitWarm(t)
	pidFile := filepath.Join(b.dir, "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, _, code, _, err := b.pipedRun(t, ctx, "", "/usr/bin/sh", "-c", "sleep 600 & echo $! > "+pidFile+"; wait")
		done <- result{code, err}
	}()
	pid := readPid(t, pidFile) // the target runs: cancel the call
	cancel()
	// Without the cancel, the call waits for sleep 600.
	select {
	case r := <-done:
		// As through a launcher started with the call: the launcher
		// kills the tree and reports the target killed.
		if r.err == nil || r.code != 128+int(syscall.SIGKILL) {
			t.Errorf("Wait = %v, exit %d; want the target killed", r.err, r.code)
		}
	case <-time.After(time.Minute): // a hang guard, not a speed bound
		t.Fatal("the call outlived its cancelled context")
	}
	waitGone(t, pid, 5*time.Second)
}

func TestTargetGetsOnlyItsEnvironment(t *testing.T) {
	b := newBox(t, "/usr/bin/env")
	for _, env := range [][]string{nil, {"ONLY=this"}} {
		c := Command(t.Context(), Target{Path: "/usr/bin/env", Args: []string{"env"}, Env: env, Dir: b.dir, Rules: b.rule, Unconfined: !Probe().Confines()})
		var o strings.Builder
		c.Stdout = &o
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		if got, want := o.String(), strings.Join(append(env, ""), "\n"); got != want {
			t.Errorf("env %q: the target sees %q (the launcher's own environment must not reach it)", env, got)
		}
	}
}

// waitDead waits until pid is a zombie whose threads have all exited, and
// so closed its descriptors (the leader turns zombie while other threads
// may still be exiting).
func waitDead(pid int) bool {
	for range 400 {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil || strings.Contains(string(stat), ") Z ") && strings.Contains(string(status), "\nThreads:\t1\n") {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// A piped target that exits 0 is done when the launcher says so, before
// the launcher exits: by then what the target left behind (an escaped
// grandchild) is gone too.
func TestPipedWaitOutlastsTheTree(t *testing.T) {
	b := newBox(t, "/usr/bin/sh", "/usr/bin/setsid", "/usr/bin/sleep")
	pidFile := b.dir + "/pid"
	out, _, code, _, err := b.pipedRun(t, t.Context(), "", "/usr/bin/sh", "-c", "setsid sleep 314 & echo $! > "+pidFile+"; echo done")
	if err != nil || code != 0 || out != "done\n" {
		t.Fatalf("piped run: %q %d %v", out, code, err)
	}
	if pid := readPid(t, pidFile); alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the escaped grandchild %d outlived Wait", pid)
	}
}

// childrenOf finds children whichever thread started them.
func TestChildrenOfEveryThread(t *testing.T) {
	var cmds []*exec.Cmd
	done := make(chan struct{})
	started := make(chan *exec.Cmd)
	for range 4 {
		go func() {
			// Each on a thread of its own, kept until the test ends,
			// and kept after: a thread that ends with its goroutine
			// locked to it exits, and a warm launcher started from it
			// (earlier, by another goroutine) would get its
			// parent-death signal.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			c := exec.Command("/usr/bin/sleep", "30")
			if err := c.Start(); err != nil {
				started <- nil
				return
			}
			started <- c
			<-done
		}()
	}
	for range 4 {
		if c := <-started; c != nil {
			cmds = append(cmds, c)
		}
	}
	defer func() {
		close(done)
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	if len(cmds) == 0 {
		t.Fatal("no /usr/bin/sleep could be started")
	}
	got := children()
	for _, c := range cmds {
		if !slices.Contains(got, c.Process.Pid) {
			t.Errorf("child %d missing from %v", c.Process.Pid, got)
		}
	}
}

// runProbePiped is runProbe through Piped: the target may start through
// a warm launcher. It returns the probe's results and the launcher's pid.
func runProbePiped(t *testing.T, p *probeListeners, rules Rules) (map[string]string, int) {
	t.Helper()
	exe := testBinary(t)
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	rules.ReadWrite = append(rules.ReadWrite, dir)
	rules.ReadOnly = append(rules.ReadOnly, SystemReadOnly...)
	rules.Exec = append(rules.Exec, Executables(exe)...)
	rules.ConnectTCP = []uint16{uint16(p.tcp)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := Piped(ctx, Target{Path: exe, Args: []string{exe, "-test.run=^$"}, Env: p.env(), Dir: dir, Rules: rules})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	sin, sout, serr := c.Pipes()
	sin.Close()
	go io.Copy(io.Discard, serr)
	out, _ := io.ReadAll(sout)
	sout.Close()
	if err := c.Wait(); err != nil {
		t.Fatalf("probe: %v", err)
	}
	serr.Close()
	return parseProbe(string(out)), c.Pid()
}

// A warm launcher has its socket filter installed before its target
// comes: for targets with UDP allowed or not, as the last target. A
// target of the other kind gets a launcher of its kind, filtered as its
// rules say, and the next warm launchers follow it.
func TestWarmLauncherFilterFollowsTheTarget(t *testing.T) {
	needLandlock(t)
	p := newProbeListeners(t)
	runProbePiped(t, p, Rules{}) // warm launchers for targets without UDP follow
	prev := false
	for i, udp := range []bool{false, true, true, false, false} {
		ready := waitWarm(t)
		got, pid := runProbePiped(t, p, Rules{AllowUDP: udp})
		want := "EACCES"
		if udp {
			want = "ok"
		}
		if got["udp-socket"] != want || got["unix-socket"] != "EACCES" || got["tcp-connect"] != "ok" {
			t.Errorf("target %d (udp %v): %v", i, udp, got)
		}
		switch {
		case udp == prev && pid != ready:
			t.Errorf("target %d (udp %v) started through launcher %d, not the warm one %d", i, udp, pid, ready)
		case udp != prev && pid == ready:
			t.Errorf("target %d (udp %v) started through the warm launcher of the other kind", i, udp)
		}
		prev = udp
	}
}

// A launcher refuses a target of the other kind than its socket filter:
// were it handed one, the filter it installed would not be the target's.
func TestLauncherRefusesATargetOfTheOtherKind(t *testing.T) {
	needLandlock(t)
	b := newBox(t, "/usr/bin/cat")
	if _, _, _, _, err := b.pipedRun(t, t.Context(), "x", "/usr/bin/cat"); err != nil {
		t.Fatal(err)
	}
	waitWarm(t)
	// Mislabel every waiting launcher (started for targets without UDP)
	// as one for targets with UDP.
	var ws []*warmLauncher
	for range warmLaunchers {
		w := <-warm
		w.udp = true
		ws = append(ws, w)
	}
	for _, w := range ws {
		warm <- w
	}
	t.Cleanup(func() { // none of them is left for another test
		for {
			select {
			case w := <-warm:
				w.discard()
			default:
				return
			}
		}
	})
	rules := b.rule
	rules.AllowUDP = true
	c := Piped(t.Context(), Target{Path: "/usr/bin/cat", Args: []string{"cat"}, Dir: b.dir, Rules: rules})
	err := c.Start()
	if err == nil {
		sin, sout, serr := c.Pipes()
		sin.Close()
		sout.Close()
		serr.Close()
		err = c.Wait()
	}
	var se *SetupError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "UDP refused, given one with UDP allowed") {
		t.Fatalf("a launcher for targets without UDP given one with UDP: %v", err)
	}
}
