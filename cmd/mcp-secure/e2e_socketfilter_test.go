//go:build unix

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The sandbox's socket filter over the real binary: a command (python3,
// which can open any socket it likes) cannot send UDP nor reach a unix
// socket by path, while TCP to an endpoint's port and socketpair work; it
// cannot trace the launcher that started it either.

// sfProbe tries each kind of socket and prints name=ok or name=ERRNO.
const sfProbe = `import ctypes, errno, os, socket, sys
udp_port, unix_path, tcp_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def attempt(name, f):
    try:
        f()
        print(name + "=ok", flush=True)
    except OSError as e:
        print(name + "=" + errno.errorcode.get(e.errno, str(e)), flush=True)
def unix_connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(unix_path)
def udp_send():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"UDP-FROM-COMMAND", ("127.0.0.1", udp_port))
def tcp_connect():
    s = socket.create_connection(("127.0.0.1", tcp_port), timeout=5)
    if not s.recv(64).startswith(b"LISTENER-SAYS-HI"):
        raise OSError(0, "no greeting")
def pair():
    a, b = socket.socketpair()
    a.send(b"x")
    if b.recv(1) != b"x":
        raise OSError(0, "socketpair lost the byte")
def ptrace_launcher():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(0x4206, os.getppid(), None, None) != 0:  # PTRACE_SEIZE the launcher
        raise OSError(ctypes.get_errno(), "ptrace")
attempt("unix", unix_connect)
attempt("udp", udp_send)
attempt("tcp", tcp_connect)
attempt("socketpair", pair)
attempt("ptrace", ptrace_launcher)
`

// sfListeners are a UDP and a unix socket listener on loopback that count
// what reaches them.
func sfListeners(t *testing.T) (udpPort int, unixPath string, got *atomic.Int32) {
	t.Helper()
	got = &atomic.Int32{}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	go func() {
		buf := make([]byte, 256)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	unixPath = filepath.Join(t.TempDir(), "service.sock")
	ul, err := net.Listen("unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			got.Add(1)
			c.Close()
		}
	}()
	return udp.LocalAddr().(*net.UDPAddr).Port, unixPath, got
}

// sfConnect connects like env.connect and keeps the server's log.
func sfConnect(t *testing.T, e *env) (*mcp.ClientSession, *sbBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := e.command()
	logs := &sbBuffer{}
	cmd.Stderr = logs
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1.2.3"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, logs
}

func TestE2ESandboxSocketFilter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		allowUDP bool
		want     map[string]string
		arrivals int32
		log      string
	}{
		{"deny/udp-and-unix-socket", false, map[string]string{"unix": "EACCES", "udp": "EACCES", "tcp": "ok", "socketpair": "ok", "ptrace": "EPERM"}, 0, "seccomp socket filter"},
		{"allow/udp-by-policy", true, map[string]string{"unix": "EACCES", "udp": "ok", "tcp": "ok", "socketpair": "ok", "ptrace": "EPERM"}, 1, "commands.allow_udp: true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tcpPort, tcpSeen := sbListener(t)
			udpPort, unixPath, got := sfListeners(t)
			network := fmt.Sprintf("network:\n  allowed_endpoints:\n    - host: 127.0.0.1\n      ports: [%d]\n  allow_dns: false\n", tcpPort)
			body := "  allowed: [python3]\n"
			if tc.allowUDP {
				body += "  allow_udp: true\n"
			}
			e := newEnvNet(t, network, sbCommands(t, body))
			cs, logs := sfConnect(t, e)
			res, out, code, stderr := sbRun(t, cs, "python3", "-c", sfProbe, fmt.Sprint(udpPort), unixPath, fmt.Sprint(tcpPort))
			if res.IsError || code != 0 {
				t.Fatalf("the probe did not run: %s exit %d %q", text(res), code, stderr)
			}
			seen := map[string]string{}
			for line := range strings.Lines(out) {
				if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
					seen[k] = v
				}
			}
			for k, want := range tc.want {
				if seen[k] != want {
					t.Errorf("%s = %q, want %q (output %q)", k, seen[k], want, out)
				}
			}
			time.Sleep(200 * time.Millisecond) // a datagram in flight
			if n := got.Load(); n != tc.arrivals {
				t.Errorf("the UDP and unix listeners saw %d arrivals, want %d", n, tc.arrivals)
			}
			if tcpSeen.Load() != 1 {
				t.Errorf("the TCP listener saw %d connections, want 1", tcpSeen.Load())
			}
			// The command was decided and audited; the sandbox refused the
			// sockets inside it.
			rec := e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run", "result": "allow"})
			if argv := fmt.Sprint(rec["input"]); !strings.Contains(argv, "python3") {
				t.Errorf("audit record input %s", argv)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("the start-up log does not say %q:\n%s", tc.log, logs.String())
			}
		})
	}
}

// A command whose process tree grows past the limit (256) is killed,
// whole, and says why; nothing it started survives.
//
// The launcher counts the tree every 20 ms, so how far past the limit a
// tree gets before it is killed depends on the machine's load: the
// command here would go on to 2000 processes (it says so if it gets
// there) and then wait for them, so only the limit ends it, and the
// test asserts no speed. Under load the tree, at nice 10, grows slowly:
// the call's timeouts leave it minutes. A pid is checked by what the
// process runs (a sleep with this run's own duration), so a pid the
// system reused is not taken for a survivor, nor killed.
func TestE2ESandboxProcessLimit(t *testing.T) {
	e := newEnv(t, sbCommands(t, "  allowed: [sh, dash, sleep, seq]\n")+"tools:\n  timeout: 300\n  rate_limits:\n    default: 600\n")
	cs := e.connect(t, "2025-11-25")
	pids := e.workspace + "/pids"
	// A duration no other process runs: 305.<nanoseconds>.
	dur := fmt.Sprintf("305.%09d", time.Now().Nanosecond())
	script := "for i in $(seq 2000); do sleep " + dur + " & echo $! >> " + pids + "; done; echo all-started; wait"
	ctx, cancel := context.WithTimeout(t.Context(), 330*time.Second) // hang guard, past the tool's timeout
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fixture_run", Arguments: map[string]any{"argv": []string{"sh", "-c", script}}})
	if err != nil {
		t.Fatalf("tools/call fixture_run: %v", err)
	}
	sc, _ := res.StructuredContent.(map[string]any)
	code, _ := sc["exit_code"].(float64)
	stderr, _ := sc["stderr"].(string)
	if res.IsError || code != 137 || !strings.Contains(stderr, "grew past 256 processes and was killed") {
		t.Errorf("%s: exit %v, stderr %q; want 137 and the limit named", text(res), code, stderr)
	}
	if out, _ := sc["stdout"].(string); strings.Contains(out, "all-started") || strings.Contains(text(res), "all-started") {
		t.Error("the tree reached 2000 processes: the limit did not stop it")
	}
	started := 0
	for f := range strings.FieldsSeq(sbReadFile(pids)) {
		var pid int
		fmt.Sscan(f, &pid)
		started++
		sbGoneAs(t, pid, "sleep\x00"+dur+"\x00", 5*time.Second, "after the limit")
	}
	// Killed past 256 processes: the shell and at least 255 sleeps, all
	// but perhaps the last of them written down.
	if started < 254 {
		t.Errorf("%d sleeps started, want at least 254 before the tree grew past 256", started)
	}
	t.Logf("%d sleeps started before the tree was killed", started)
	e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run", "result": "allow"})
}

// sbGoneAs is sbGone for a process known by its command line: a pid that
// now runs something else was reused, and the process is gone.
func sbGoneAs(t *testing.T, pid int, cmdline string, within time.Duration, what string) {
	t.Helper()
	alive := func() bool {
		cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && string(cl) == cmdline && sbAlive(pid)
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if !alive() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if alive() {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("%s: process %d survived", what, pid)
	}
}

func sbReadFile(name string) string {
	data, _ := os.ReadFile(name)
	return string(data)
}
