//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// The command door over the real binary: an executable is decided by
// what it is, every child runs in the sandbox, and nothing a call starts
// outlives the call or the server.

func sbNeedLandlock(t *testing.T) {
	t.Helper()
	if s := sandbox.Probe(); !s.Confines() {
		t.Skipf("kernel lacks Landlock confinement (%s): sandbox case skipped", s.Reason)
	}
}

// sbCommands is a commands section; where the kernel cannot confine
// children it adds unconfined: true (and says so), so the cases that do
// not depend on Landlock still run.
func sbCommands(t *testing.T, body string) string {
	t.Helper()
	if s := sandbox.Probe(); !s.Confines() {
		t.Logf("kernel lacks Landlock confinement (%s): running this case unconfined", s.Reason)
		body += "  unconfined: true\n"
	}
	return "commands:\n" + body
}

// sbRun calls fixture_run and returns the result, its stdout text, its
// exit code and stderr.
func sbRun(t *testing.T, cs *mcp.ClientSession, argv ...string) (res *mcp.CallToolResult, stdout string, code int, stderr string) {
	t.Helper()
	res = call(t, cs, "fixture_run", map[string]any{"argv": argv})
	sc, _ := res.StructuredContent.(map[string]any)
	c, _ := sc["exit_code"].(float64)
	se, _ := sc["stderr"].(string)
	return res, text(res), int(c), se
}

// sbDenied checks that res is a command denial saying want, and that the
// audit log holds the denial.
func sbDenied(t *testing.T, e *env, res *mcp.CallToolResult, want ...string) {
	t.Helper()
	msg := text(res)
	if !res.IsError {
		t.Fatalf("not denied: %q %v", msg, res.StructuredContent)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("denial %q does not say %q", msg, w)
		}
	}
	rec := e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run", "result": "deny"})
	reasons := fmt.Sprint(rec["reasons"])
	for _, w := range want {
		if !strings.Contains(reasons, w) {
			t.Errorf("audit record reasons %s do not say %q", reasons, w)
		}
	}
}

// Finding 3: the allowlist checked names only.
func TestE2ESandboxExecutableIsWhatItIs(t *testing.T) {
	t.Run("deny/script-named-cat", func(t *testing.T) {
		e := newEnv(t, sbCommands(t, "  allowed: [cat, cp, ls]\n"))
		cs := e.connect(t, "2025-11-25")
		script := e.workspace + "/cat"
		// The filesystem door writes the shell script; cp over an
		// executable copy gives it the mode bits (cp keeps the mode of a
		// file it overwrites).
		if res := call(t, cs, "fixture_write", map[string]any{"path": e.workspace + "/script.txt", "text": "#!/bin/sh\necho SCRIPT-RAN\n"}); res.IsError {
			t.Fatalf("fixture_write: %s", text(res))
		}
		for _, argv := range [][]string{{"cp", "/usr/bin/cat", script}, {"cp", e.workspace + "/script.txt", script}} {
			if res, _, code, stderr := sbRun(t, cs, argv...); res.IsError || code != 0 {
				t.Fatalf("%q: %q %d %q", argv, text(res), code, stderr)
			}
		}
		if data, _ := os.ReadFile(script); !strings.HasPrefix(string(data), "#!/bin/sh") {
			t.Fatalf("the script did not land: %.40q", data)
		}
		if st, err := os.Stat(script); err != nil || st.Mode()&0o111 == 0 {
			t.Fatalf("the script is not executable (%v %v): the case would not test the trust rule", st.Mode(), err)
		}
		res, out, _, _ := sbRun(t, cs, script, "notes.txt")
		sbDenied(t, e, res, "is inside filesystem.allowed_paths", `interpreter "dash" (of a #! script) is not in commands.allowed`)
		if strings.Contains(out, "SCRIPT-RAN") {
			t.Error("the script ran")
		}
	})

	t.Run("deny/copy-of-id-named-cat", func(t *testing.T) {
		e := newEnv(t, sbCommands(t, "  allowed: [/usr/bin/cat, cp, ls]\n"))
		data, err := os.ReadFile("/usr/bin/id")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.workspace+"/cat", data, 0o755); err != nil {
			t.Fatal(err)
		}
		cs := e.connect(t, "2025-11-25")
		res, out, _, _ := sbRun(t, cs, e.workspace+"/cat")
		sbDenied(t, e, res, "is inside filesystem.allowed_paths", "a tool could have written it")
		if strings.Contains(out, "uid=") {
			t.Error("id ran under the name cat")
		}
	})

	t.Run("deny/hard-link-of-blocked-perl", func(t *testing.T) {
		link := sbPerlHardLink(t)
		e := newEnv(t, sbCommands(t, "  blocked: [perl]\n"))
		cs := e.connect(t, "2025-11-25")
		res, out, _, _ := sbRun(t, cs, link, "-e", `print "PERL-RAN\n"`)
		sbDenied(t, e, res, `is the same file as "perl" in commands.blocked`)
		if strings.Contains(out, "PERL-RAN") {
			t.Error("perl ran under another name")
		}
	})
}

// sbPerlHardLink returns a hard link of /usr/bin/perl under another name:
// one the system already has in /usr/bin (perl5.36.0 on Debian), else one
// made in a root-owned directory on the same filesystem.
func sbPerlHardLink(t *testing.T) string {
	t.Helper()
	var perl syscall.Stat_t
	if err := syscall.Stat("/usr/bin/perl", &perl); err != nil {
		t.Fatalf("this case needs /usr/bin/perl: %v", err)
	}
	matches, _ := filepath.Glob("/usr/bin/perl5*")
	for _, m := range matches {
		var st syscall.Stat_t
		if syscall.Stat(m, &st) == nil && st.Ino == perl.Ino && st.Dev == perl.Dev {
			return m
		}
	}
	dir, err := os.MkdirTemp("/var/lib", "mcp-secure-e2e-")
	if err != nil {
		t.Fatalf("no hard link of perl in /usr/bin and none can be made: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	link := filepath.Join(dir, "perl5.36.0")
	if err := os.Link("/usr/bin/perl", link); err != nil {
		t.Fatalf("hard link of perl: %v", err)
	}
	return link
}

// sbListener accepts loopback connections and counts them.
func sbListener(t *testing.T) (port int, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Write([]byte("LISTENER-SAYS-HI\n"))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// Finding 3, last part: git's shell aliases start what they like. In the
// sandbox git can execute nothing the allowlist does not name.
func TestE2ESandboxGitAliasRunsNothing(t *testing.T) {
	sbNeedLandlock(t)
	port, accepted := sbListener(t)
	e := newEnv(t, "commands:\n  allowed: [git]\n")
	cs := e.connect(t, "2025-11-25")
	marker := e.workspace + "/alias-ran"
	alias := fmt.Sprintf("alias.x=!id > %s; curl -s http://127.0.0.1:%d/ > %s.curl", marker, port, marker)
	res, out, code, stderr := sbRun(t, cs, "git", "-c", alias, "x")
	if res.IsError {
		t.Fatalf("git was not allowed to start: %s", text(res))
	}
	if code == 0 || strings.Contains(out, "uid=") {
		t.Errorf("the alias ran: exit %d, %q", code, out)
	}
	if !strings.Contains(stderr, "Permission denied") {
		t.Errorf("git's stderr does not show the sandbox refusing the shell: %q", stderr)
	}
	for _, f := range []string{marker, marker + ".curl"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s exists: the alias ran", f)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the listener saw %d connections", n)
	}
	// git itself works in the sandbox.
	if res, out, code, stderr := sbRun(t, cs, "git", "--version"); res.IsError || code != 0 || !strings.Contains(out, "git version") {
		t.Errorf("git --version: %q %d %q", out, code, stderr)
	}
}

// The sandbox holds files and ports the decision never saw.
func TestE2ESandboxConfinesChildren(t *testing.T) {
	sbNeedLandlock(t)
	allowedPort, allowedSeen := sbListener(t)
	deniedPort, deniedSeen := sbListener(t)
	network := fmt.Sprintf("network:\n  allowed_endpoints:\n    - host: 127.0.0.1\n      ports: [%d]\n  allow_dns: false\n", allowedPort)
	e := newEnvNet(t, network, "commands:\n  allowed: [cat, bash]\n")
	outside := filepath.Join(e.dir, "outside.txt")
	if err := os.WriteFile(outside, []byte("OUTSIDE-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.workspace+"/inside.txt", []byte("INSIDE-TEXT"), 0o644); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "2025-11-25")
	for _, tc := range []struct {
		name   string
		argv   []string
		secret string
	}{
		{"deny/read-temp-file-outside", []string{"cat", outside}, "OUTSIDE-SECRET"},
		{"deny/read-etc-hostname", []string{"cat", "/etc/hostname"}, sbHostname(t)},
		{"deny/write-outside", []string{"bash", "-c", "echo planted > " + e.dir + "/planted"}, ""},
		{"deny/connect-unlisted-port", []string{"bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && cat <&3", deniedPort)}, "LISTENER-SAYS-HI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, out, code, stderr := sbRun(t, cs, tc.argv...)
			if res.IsError {
				t.Fatalf("the command was refused before it ran: %s", text(res))
			}
			if code == 0 || (tc.secret != "" && strings.Contains(out, tc.secret)) {
				t.Errorf("not stopped: exit %d out %q", code, out)
			}
			if !strings.Contains(stderr, "Permission denied") {
				t.Errorf("stderr %q: want the sandbox's permission error", stderr)
			}
		})
	}
	if _, err := os.Stat(e.dir + "/planted"); err == nil {
		t.Error("a write outside the workspace landed")
	}
	if n := deniedSeen.Load(); n != 0 {
		t.Errorf("the listener on the unlisted port saw %d connections", n)
	}
	t.Run("allow/read-inside", func(t *testing.T) {
		if _, out, code, stderr := sbRun(t, cs, "cat", e.workspace+"/inside.txt"); code != 0 || out != "INSIDE-TEXT" {
			t.Errorf("exit %d out %q err %q", code, out, stderr)
		}
	})
	t.Run("allow/connect-endpoint-port", func(t *testing.T) {
		_, out, code, stderr := sbRun(t, cs, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && cat <&3", allowedPort))
		if code != 0 || !strings.Contains(out, "LISTENER-SAYS-HI") || allowedSeen.Load() == 0 {
			t.Errorf("exit %d out %q err %q", code, out, stderr)
		}
	})
}

func sbHostname(t *testing.T) string {
	data, err := os.ReadFile("/etc/hostname")
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	return string(bytes.TrimSpace(data))
}

func sbAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

// sbReadPid waits for a pid file the command writes.
func sbReadPid(t *testing.T, file string) int {
	t.Helper()
	for range 500 {
		data, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

// sbGone fails unless pid is gone within the bound; a survivor (which this
// test started) is killed.
func sbGone(t *testing.T, pid int, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if !sbAlive(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("%s: process %d survived", what, pid)
}

// Finding 4: children outlived their call and the server.
func TestE2ESandboxNothingOutlivesTheCall(t *testing.T) {
	commands := sbCommands(t, "  allowed: [sh, dash, setsid, sleep]\n")
	t.Run("deny/setsid-child-survives-call", func(t *testing.T) {
		e := newEnv(t, commands)
		cs := e.connect(t, "2025-11-25")
		pidFile := e.workspace + "/pid"
		// The child is seen alive before the call ends, so that its
		// absence afterwards is the sandbox's doing.
		res, out, code, stderr := sbRun(t, cs, "sh", "-c", "setsid sleep 312 & p=$!; echo $p > "+pidFile+"; sleep 0.2; kill -0 $p && echo alive")
		if res.IsError || code != 0 || !strings.Contains(out, "alive") {
			t.Fatalf("%s %d %q %q", text(res), code, out, stderr)
		}
		pid := sbReadPid(t, pidFile)
		sbGone(t, pid, 5*time.Second, "after the call")
	})

	t.Run("deny/double-fork-survives-call", func(t *testing.T) {
		e := newEnv(t, commands)
		cs := e.connect(t, "2025-11-25")
		pidFile := e.workspace + "/pid"
		res, out, code, stderr := sbRun(t, cs, "sh", "-c", "( ( sleep 312 & echo $! > "+pidFile+" ) & ) ; while [ ! -s "+pidFile+" ]; do sleep 0.05; done; read p < "+pidFile+"; kill -0 $p && echo alive")
		if res.IsError || code != 0 || !strings.Contains(out, "alive") {
			t.Fatalf("%s %d %q %q", text(res), code, out, stderr)
		}
		sbGone(t, sbReadPid(t, pidFile), 5*time.Second, "after the call")
	})

	t.Run("deny/setsid-child-survives-server-kill", func(t *testing.T) {
		e := newEnv(t, commands)
		cmd := e.command()
		var logs sbBuffer
		cmd.Stderr = &logs
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		client := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1.2.3"}, nil)
		cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		if s := sandbox.Probe(); s.Confines() {
			for i := 0; i < 100 && !strings.Contains(logs.String(), "Landlock ABI"); i++ {
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), "Landlock ABI") {
				t.Errorf("start-up does not report the confinement: %s", logs.String())
			}
		}
		pidFile := e.workspace + "/pid"
		go cs.CallTool(ctx, &mcp.CallToolParams{Name: "fixture_run", Arguments: map[string]any{"argv": []string{"sh", "-c", "setsid sleep 313 & echo $! > " + pidFile + "; wait"}}})
		pid := sbReadPid(t, pidFile)
		if !sbAlive(pid) {
			t.Fatal("the grandchild is not running while its call is in flight")
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		sbGone(t, pid, 5*time.Second, "after SIGKILL of the server")
	})
}

// Without Landlock, commands run only when the policy says so.
func TestE2ESandboxUnavailableRefusesCommands(t *testing.T) {
	e := newEnv(t, "commands:\n  allowed: [cat]\n")
	e.vars = []string{sandbox.NoLandlockEnv + "=1"}
	cs := e.connect(t, "2025-11-25")
	res, _, _, _ := sbRun(t, cs, "cat", "/etc/hostname")
	sbDenied(t, e, res, "commands cannot be confined here", "commands.unconfined: true")

	e = newEnv(t, "commands:\n  allowed: [cat]\n  unconfined: true\n")
	e.vars = []string{sandbox.NoLandlockEnv + "=1"}
	cs = e.connect(t, "2025-11-25")
	os.WriteFile(e.workspace+"/f.txt", []byte("RAN-UNCONFINED"), 0o644)
	if res, out, code, stderr := sbRun(t, cs, "cat", e.workspace+"/f.txt"); res.IsError || code != 0 || out != "RAN-UNCONFINED" {
		t.Errorf("unconfined run: %s %q %d %q", text(res), out, code, stderr)
	}
}

type sbBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *sbBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *sbBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Finding 4, at scale: twenty calls in flight when the client closes
// stdin; none of their children may outlive the server.
func TestE2ESandboxManyCallsAtEOF(t *testing.T) {
	const n = 20
	// At EOF every call read is answered, each within its deadline
	// (tools.timeout), and nothing any of them started survives. The
	// deadline leaves a slow machine time to start all the sandboxes
	// (a few at a time) before stdin is closed with every call in flight.
	e := newEnv(t, sbCommands(t, "  allowed: [sh, dash, setsid, sleep]\n")+"tools:\n  timeout: 10\n  rate_limits:\n    default: 600\n")
	r := e.startRaw(t)
	r.initialize()
	for i := range n {
		pidFile := fmt.Sprintf("%s/pid-%d", e.workspace, i)
		r.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"fixture_run","arguments":{"argv":["sh","-c","setsid sleep 314 & echo $! > %s; wait"]}}}`, i+1, pidFile))
	}
	pids := make([]int, n)
	for i := range n {
		pids[i] = sbReadPid(t, fmt.Sprintf("%s/pid-%d", e.workspace, i))
	}
	r.stdin.Close()
	answered := map[string]bool{}
	for range n {
		m := r.recv()
		res, _ := m["result"].(map[string]any)
		if res["isError"] != true || !strings.Contains(fmt.Sprint(res["content"]), "timed out") {
			t.Errorf("answer = %v, want the call's timeout", m)
		}
		answered[fmt.Sprint(m["id"])] = true
	}
	if len(answered) != n {
		t.Errorf("%d distinct answers to %d calls", len(answered), n)
	}
	exited := make(chan struct{})
	go func() { r.cmd.Process.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Error("the server did not exit within 20 s of answering every call after EOF")
		r.cmd.Process.Kill()
	}
	for _, pid := range pids {
		sbGone(t, pid, 5*time.Second, "after EOF")
	}
}

// TestE2ESandboxKeepsServerFilesOut: with allowed paths that cover the
// audit log and the policy file, a sandboxed command can neither read
// nor overwrite them in place, while it still reads its workspace.
func TestE2ESandboxKeepsServerFilesOut(t *testing.T) {
	if s := sandbox.Probe(); !s.Confines() {
		t.Skipf("kernel lacks Landlock confinement (%s): nothing confines the command", s.Reason)
	}
	dir := t.TempDir()
	e := &env{dir: dir, policy: filepath.Join(dir, "policy.yaml"), audit: filepath.Join(dir, "logs", "audit.log"), workspace: dir}
	e.write(t, "policy.yaml", fmt.Sprintf(`version: "1.0"
filesystem:
  allowed_paths: ["%s/**"]
audit:
  log_file: "%s"
commands:
  allowed: [cat, sh, dash]
tools:
  timeout: 10
  rate_limits: {default: 600}
`, dir, e.audit))
	e.write(t, "notes.txt", "workspace-notes")
	cs := e.connect(t, "2025-11-25")
	if _, out, code, _ := sbRun(t, cs, "cat", filepath.Join(dir, "notes.txt")); code != 0 || out != "workspace-notes" {
		t.Fatalf("a workspace file was not readable: exit %d %q", code, out)
	}
	before, err := os.ReadFile(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	policyBefore, _ := os.ReadFile(e.policy)
	for _, argv := range [][]string{
		{"cat", e.audit},
		{"cat", e.policy},
		{"sh", "-c", "echo forged > " + e.audit},
		{"sh", "-c", "echo 'version: \"1.0\"' > " + e.policy},
		{"sh", "-c", "echo x > " + filepath.Join(dir, "logs", "planted")},
	} {
		_, out, code, _ := sbRun(t, cs, argv...)
		if code == 0 || strings.Contains(out, "decision_id") || strings.Contains(out, "allowed_paths") {
			t.Errorf("%q: exit %d, output %q: the sandbox let it through", argv, code, out)
		}
	}
	after, _ := os.ReadFile(e.audit)
	// (The forged text appears inside the records of the refused command
	// lines; a rewrite would have cut the log instead.)
	if !bytes.HasPrefix(after, before) || bytes.Contains(after, []byte("\nforged\n")) || bytes.HasPrefix(after, []byte("forged")) {
		t.Errorf("the audit log was rewritten by a command:\nbefore %s\nafter %s", before, after)
	}
	if policyAfter, _ := os.ReadFile(e.policy); !bytes.Equal(policyBefore, policyAfter) {
		t.Error("the policy file was rewritten by a command")
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", "planted")); err == nil {
		t.Error("a command planted a file in the audit log's directory")
	}
}

// TestE2ESandboxRootThroughSymlink: an allowed path written through a
// symlink still keeps the server's files (below the link's target) out of
// a command's reach.
func TestE2ESandboxRootThroughSymlink(t *testing.T) {
	if s := sandbox.Probe(); !s.Confines() {
		t.Skipf("kernel lacks Landlock confinement (%s): nothing confines the command", s.Reason)
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "ws"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, policy: filepath.Join(dir, "policy.yaml"), audit: filepath.Join(real, "logs", "audit.log"), workspace: filepath.Join(real, "ws")}
	e.write(t, "policy.yaml", fmt.Sprintf(`version: "1.0"
filesystem:
  allowed_paths: ["%s/link/**", "%s/ws/**"]
audit:
  log_file: "%s"
commands:
  allowed: [cat, sh, dash]
tools:
  timeout: 10
  rate_limits: {default: 600}
`, dir, real, e.audit))
	if err := os.WriteFile(filepath.Join(real, "other.txt"), []byte("through the link"), 0o644); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "2025-11-25")
	run := func(argv ...string) (res *mcp.CallToolResult, out string, code int, stderr string) {
		res = call(t, cs, "fixture_run", map[string]any{"argv": argv, "dir": e.workspace})
		sc, _ := res.StructuredContent.(map[string]any)
		c, _ := sc["exit_code"].(float64)
		se, _ := sc["stderr"].(string)
		return res, text(res), int(c), se
	}
	// The symlinked root is granted: a file below it that is not the
	// server's is read.
	if res, out, code, stderr := run("cat", filepath.Join(dir, "link", "other.txt")); res.IsError || code != 0 || out != "through the link" {
		t.Fatalf("a file below the symlinked root was not readable: %v exit %d %q %q", res.IsError, code, out, stderr)
	}
	key := filepath.Join(real, "logs", "audit.key")
	for _, argv := range [][]string{
		{"cat", key},
		{"sh", "-c", "echo FORGED >> " + e.audit},
	} {
		// The command runs (the policy allows it) and the sandbox refuses
		// the access.
		res, out, code, stderr := run(argv...)
		if res.IsError || code == 0 || !strings.Contains(stderr, "ermission denied") {
			t.Errorf("%q through the symlinked root: error %v, exit %d, out %q, stderr %q; want a permission error from the sandbox", argv, res.IsError, code, out, stderr)
		}
	}
	if data, _ := os.ReadFile(e.audit); bytes.Contains(data, []byte("\nFORGED")) {
		t.Error("a command appended to the audit log")
	}
}
