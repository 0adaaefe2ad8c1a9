//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// probeListeners are what the net probe reaches for: a TCP listener that
// greets, a UDP listener and a unix stream and datagram socket by path,
// each counting what arrives.
type probeListeners struct {
	tcp, udp int
	unixPath string
	got      atomic.Int32 // connections and datagrams on the UDP and unix sockets
}

func newProbeListeners(t *testing.T) *probeListeners {
	t.Helper()
	p := &probeListeners{}
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
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	p.tcp = ln.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	p.udp = udp.LocalAddr().(*net.UDPAddr).Port
	go p.count(udp)
	p.unixPath = filepath.Join(t.TempDir(), "s.sock")
	ul, err := net.Listen("unix", p.unixPath)
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
			p.got.Add(1)
			c.Close()
		}
	}()
	ud, err := net.ListenPacket("unixgram", p.unixPath+".dgram")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ud.Close() })
	go p.count(ud)
	return p
}

func (p *probeListeners) count(c net.PacketConn) {
	buf := make([]byte, 256)
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			return
		}
		p.got.Add(1)
	}
}

// settle gives datagrams in flight time to arrive before got is read.
func (p *probeListeners) settle() int32 {
	time.Sleep(100 * time.Millisecond)
	return p.got.Load()
}

func (p *probeListeners) env(extra ...string) []string {
	return append([]string{"SANDBOX_TEST_HELPER=net", "PROBE_TCP=" + strconv.Itoa(p.tcp), "PROBE_UDP=" + strconv.Itoa(p.udp), "PROBE_UNIX=" + p.unixPath}, extra...)
}

func parseProbe(out string) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			m[k] = v
		}
	}
	return m
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// runProbe runs the net probe in the sandbox.
func runProbe(t *testing.T, p *probeListeners, rules Rules, unconfined bool, extra ...string) (map[string]string, string, int) {
	t.Helper()
	exe := testBinary(t)
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	rules.ReadWrite = append(rules.ReadWrite, dir)
	rules.ReadOnly = append(rules.ReadOnly, SystemReadOnly...)
	rules.Exec = append(rules.Exec, Executables(exe)...)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := Command(ctx, Target{Path: exe, Args: []string{exe, "-test.run=^$"}, Env: p.env(extra...), Dir: dir, Rules: rules, Unconfined: unconfined})
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	c.Run()
	return parseProbe(o.String()), e.String(), c.ExitCode()
}

// The control: outside the sandbox the probe reaches every listener, so
// a refusal inside is the sandbox's doing.
func TestNetProbeUnsandboxed(t *testing.T) {
	p := newProbeListeners(t)
	cmd := exec.CommandContext(t.Context(), testBinary(t), "-test.run=^$")
	cmd.Env = p.env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := parseProbe(string(out))
	for _, k := range []string{"unix-socket", "unix-connect", "udp-socket", "udp-sendto", "tcp-connect", "socketpair-dgram-sendto"} {
		if got[k] != "ok" {
			t.Errorf("control/%s = %q, want ok", k, got[k])
		}
	}
	if n := p.settle(); n < 3 {
		t.Errorf("control: the listeners saw %d arrivals, want 3 (unix connect, UDP, unix datagram)", n)
	}
}

func TestSocketFilter(t *testing.T) {
	needLandlock(t)
	denied := map[string]string{
		"unix-socket":          "EACCES",
		"unix-dgram-socket":    "EACCES",
		"udp-socket":           "EACCES",
		"udp6-socket":          "EACCES",
		"icmp-socket":          "EACCES",
		"tcp-socket":           "ok",
		"tcp-connect":          "ok",
		"mptcp-socket":         "EACCES",
		"raw-socket":           "EACCES",
		"packet-socket":        "EAFNOSUPPORT",
		"netlink-route":        "ok",
		"netlink-diag":         "EACCES",
		"socketpair-stream":    "ok",
		"socketpair-seqpacket": "ok",
		"socketpair-dgram":     "EACCES",
		"io_uring":             "ENOSYS",
		"ptrace-launcher":      "EPERM",
	}
	for name, tc := range map[string]struct {
		rules      Rules
		unconfined bool
		want       map[string]string
		arrivals   int32
	}{
		"deny/default": {want: denied},
		"allow/udp": {rules: Rules{AllowUDP: true}, arrivals: 1, want: merge(denied, map[string]string{
			"udp-socket": "ok", "udp-sendto": "ok", "udp6-socket": "ok",
		})},
		// Without Landlock the filter still holds (the TCP port is then
		// open to anything, as Landlock is what confines it).
		"deny/unconfined": {unconfined: true, want: merge(denied, map[string]string{"ptrace-launcher": "EPERM"})},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProbeListeners(t)
			tc.rules.ConnectTCP = []uint16{uint16(p.tcp)}
			got, stderr, code := runProbe(t, p, tc.rules, tc.unconfined, "PROBE_PTRACE=1")
			if code != 0 {
				t.Fatalf("probe exit %d: %s", code, stderr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("probe results (-want +got):\n%s", d)
			}
			if n := p.settle(); n != tc.arrivals {
				t.Errorf("the listeners saw %d arrivals, want %d", n, tc.arrivals)
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestSocketFilterKillsX32(t *testing.T) {
	needLandlock(t)
	if filterArch == nil || !filterArch.x32 {
		t.Skip("no x32 ABI on this architecture")
	}
	p := newProbeListeners(t)
	got, stderr, code := runProbe(t, p, Rules{}, false, "PROBE_X32=1")
	if code != 128+31 || got["x32"] != "" {
		t.Errorf("an x32 system call: exit %d %v %q, want death by SIGSYS (159)", code, got, stderr)
	}
}

// Programs that look for unix sockets (the nscd client in glibc, say)
// fall back when they are refused, and runtimes start.
func TestSocketFilterKeepsProgramsWorking(t *testing.T) {
	needLandlock(t)
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"allow/getent-passwd", []string{"/usr/bin/getent", "passwd", "root"}, "root:x:0:0"},
		{"allow/python3", []string{"/usr/bin/python3", "-c", "import socket; a, b = socket.socketpair(); a.send(b'pair'); print(b.recv(4).decode(), socket.getaddrinfo('localhost', 80, type=socket.SOCK_STREAM)[0][4][1])"}, "pair 80"},
		{"allow/node", []string{"/usr/bin/node", "-e", "require('net'); console.log('node', 1+1)"}, "node 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exe, err := filepath.EvalSymlinks(tc.argv[0])
			if err != nil {
				t.Fatalf("this case needs %s: %v", tc.argv[0], err)
			}
			b := newBox(t, exe)
			b.rule.ReadOnly = append(b.rule.ReadOnly, "/etc/hosts", "/etc/ssl/openssl.cnf")
			out, stderr, code, err := b.run(t, t.Context(), append([]string{exe}, tc.argv[1:]...)...)
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d %v out %q err %q", code, err, out, stderr)
			}
		})
	}
}

func TestProcessLimit(t *testing.T) {
	b := newBox(t, "/usr/bin/sh", "/usr/bin/sleep", "/usr/bin/seq")
	pids := filepath.Join(b.dir, "pids")
	spawn := func(n string) string {
		return fmt.Sprintf("for i in $(seq %s); do sleep 301 & echo $! >> %s; done; echo all-started", n, pids)
	}
	for _, tc := range []struct {
		name   string
		limit  uint64
		script string
		code   int
	}{
		{"deny/over-the-limit", 20, spawn("60") + "; wait", 137},
		{"deny/endless-forks", 30, "while :; do sleep 301 & echo $! >> " + pids + "; done", 137},
		// Under the limit: the sleeps live until the target exits, when
		// the launcher ends them.
		{"allow/under-the-default", 0, spawn("40"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(pids)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			argv := []string{"/usr/bin/sh", "-c", tc.script}
			c := Command(ctx, Target{Path: argv[0], Args: argv, Env: []string{"PATH=/usr/bin:/bin"}, Dir: b.dir, Rules: b.rule,
				Limits: Limits{Processes: tc.limit}, Unconfined: !Probe().Confines()})
			var o, e bytes.Buffer
			c.Stdout, c.Stderr = &o, &e
			start := time.Now()
			c.Run()
			took := time.Since(start)
			if c.ExitCode() != tc.code {
				t.Errorf("exit %d, want %d; out %q err %q", c.ExitCode(), tc.code, o.String(), e.String())
			}
			if tc.code != 0 && !strings.Contains(e.String(), fmt.Sprintf("grew past %d processes", tc.limit)) {
				t.Errorf("stderr %q does not say the limit was hit", e.String())
			}
			if tc.code == 0 && !strings.Contains(o.String(), "all-started") {
				t.Errorf("out %q", o.String())
			}
			data, _ := os.ReadFile(pids)
			started := strings.Fields(string(data))
			t.Logf("%d processes started in %v", len(started), took.Round(time.Millisecond))
			for _, f := range started {
				pid, _ := strconv.Atoi(f)
				waitGone(t, pid, 5*time.Second)
			}
		})
	}
}
