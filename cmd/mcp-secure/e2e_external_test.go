//go:build unix

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// External plugins over the real binary: a program in a plugin directory
// the policy lists serves tools through the pipeline, runs in the
// sandbox, and every way it can fail is a clear error result.

var (
	fixtureOnce sync.Once
	fixtureBin  string
	fixtureErr  error
)

// extFixture builds testdata/extfixture once.
func extFixture(t *testing.T) string {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureBin = filepath.Join(filepath.Dir(binPath), "extfixture")
		out, err := exec.Command("go", "build", "-o", fixtureBin, "./testdata/extfixture").CombinedOutput()
		if err != nil {
			fixtureErr = fmt.Errorf("building the fixture plugin: %v\n%s", err, out)
		}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureBin
}

// fxTools are the fixture's tools (named <prefix>_<what>) and their
// argument schemas.
var fxTools = []struct{ what, schema string }{
	{"echo", `{type: object, properties: {text: {type: string}}, required: [text], additionalProperties: false}`},
	{"fail", `{type: object}`},
	{"exit", `{type: object}`},
	{"crash", `{type: object}`},
	{"hang", `{type: object, properties: {pidfile: {type: string}}, required: [pidfile]}`},
	{"killer", `{type: object, properties: {pidfile: {type: string}}, required: [pidfile]}`},
	{"stopper", `{type: object, properties: {pidfile: {type: string}}, required: [pidfile]}`},
	{"huge", `{type: object}`},
	{"garbage", `{type: object}`},
	{"noisy", `{type: object}`},
	{"read", `{type: object, properties: {path: {type: string}}, required: [path]}`},
	{"write", `{type: object, properties: {path: {type: string}}, required: [path]}`},
	{"connect", `{type: object, properties: {port: {type: integer}}, required: [port]}`},
	{"spawn", `{type: object, properties: {path: {type: string}}, required: [path]}`},
}

// fxManifest is a manifest for the fixture program, its tools named
// prefix_*; extra is appended (mode, sandbox, sha256, ...).
func fxManifest(name, prefix, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nversion: 0.1.0\ntype: external\nexecutable: fx\nenv: [FX_PASSED]\n%s", name, extra)
	if !strings.Contains(extra, "tools:") {
		b.WriteString("tools:\n")
		for _, tl := range fxTools {
			fmt.Fprintf(&b, "  - name: %s_%s\n    description: fixture %s\n    input_schema: %s\n", prefix, tl.what, tl.what, tl.schema)
		}
	}
	return b.String()
}

// extPlugin makes e.dir/plugins/<name> with the fixture program as fx and
// the manifest, and returns the directory.
func extPlugin(t *testing.T, e *env, name, manifest string) string {
	t.Helper()
	dir := filepath.Join(e.dir, "plugins", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(extFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fx"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// extPolicy is the plugins section listing dirs (relative to the policy).
func extPolicy(dirs ...string) string {
	return "plugins:\n  external: [" + strings.Join(dirs, ", ") + "]\n"
}

// connectLog is connect, keeping the server's stderr.
func (e *env) connectLog(t *testing.T) (*mcp.ClientSession, *syncBuffer) {
	t.Helper()
	return e.connectAs(t, "e2e-client")
}

// wantError checks res is an error result whose text holds every want.
func wantError(t *testing.T, res *mcp.CallToolResult, want ...string) {
	t.Helper()
	if !res.IsError {
		t.Fatalf("want an error result, got %q", text(res))
	}
	for _, w := range want {
		if !strings.Contains(text(res), w) {
			t.Errorf("error %q does not say %q", text(res), w)
		}
	}
}

// callRecords are the audit records of the last call to tool: its
// tool_call decision, the command records of its processes and its
// tool_result.
func (e *env) callRecords(t *testing.T, tool string) (decision, result map[string]any, launches int) {
	t.Helper()
	decision = e.findRecord(t, map[string]any{"kind": "tool_call", "tool": tool})
	id := decision["decision_id"]
	for _, r := range e.records(t) {
		switch {
		case r["kind"] == "tool_result" && r["decision_id"] == id:
			result = r
		case r["kind"] == "command" && r["parent_decision_id"] == id && r["result"] == "allow":
			launches++
		}
	}
	return decision, result, launches
}

// launchRefusal is the command denial recorded under the last call of
// tool: its launch refused by the command door. It fails the test when
// there is none.
func (e *env) launchRefusal(t *testing.T, tool string) map[string]any {
	t.Helper()
	id := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": tool})["decision_id"]
	return e.findRecord(t, map[string]any{"kind": "command", "parent_decision_id": id, "result": "deny"})
}

func TestExternalPerCall(t *testing.T) {
	e := newEnv(t, extPolicy("plugins/fx"))
	extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
	e.vars = append(e.vars, "FX_PASSED=yes", "FX_NOT_PASSED=leaked")
	cs, logs := e.connectLog(t)

	if !strings.Contains(logs.String(), "external plugin") || !strings.Contains(logs.String(), "Landlock ABI") {
		t.Errorf("the start-up log does not say how plugin fx is confined")
	}

	t.Run("ok", func(t *testing.T) {
		res := call(t, cs, "fx_echo", map[string]any{"text": "hello"})
		if res.IsError || !strings.Contains(text(res), "text=hello") {
			t.Fatalf("echo: %q (error %v)", text(res), res.IsError)
		}
		// FX_PASSED is named by the manifest; FX_NOT_PASSED, set for the
		// server too, is not and must arrive empty.
		if !strings.Contains(text(res), "env=yes| home=/nonexistent") {
			t.Errorf("environment: want only what the manifest names, got %q", text(res))
		}
		d, r, launches := e.callRecords(t, "fx_echo")
		if d["result"] != "allow" || r == nil || r["status"] != "ok" || launches != 1 {
			t.Errorf("audit: decision %v, result %v, %d launches", d["result"], r, launches)
		}
	})
	t.Run("schema-refused-before-start", func(t *testing.T) {
		before := len(e.records(t))
		res := call(t, cs, "fx_echo", map[string]any{"text": "x", "extra": 1})
		wantError(t, res)
		for _, r := range e.records(t)[before:] {
			if r["kind"] == "command" || r["kind"] == "tool_call" {
				t.Errorf("an invalid call reached %s: %v", r["kind"], r)
			}
		}
	})
	t.Run("tool-error", func(t *testing.T) {
		res := call(t, cs, "fx_fail", map[string]any{})
		wantError(t, res, "the tool says no")
		_, r, _ := e.callRecords(t, "fx_fail")
		if r == nil || r["status"] != "tool_error" {
			t.Errorf("tool_result: %v", r)
		}
		waitFor(t, 10*time.Second, "stderr in the log", func() bool { return strings.Contains(logs.String(), "fail: token=") })
		if l := logs.String(); strings.Contains(l, "abcdefghijklmnopqrstuvwxyz0123456789") {
			t.Errorf("stderr reached the log unredacted")
		}
	})
	t.Run("non-zero-exit", func(t *testing.T) {
		wantError(t, call(t, cs, "fx_exit", map[string]any{}), "exited with status 3")
	})
	t.Run("crash", func(t *testing.T) {
		wantError(t, call(t, cs, "fx_crash", map[string]any{}), "crashed", "signal 9")
	})
	t.Run("huge-output", func(t *testing.T) {
		res := call(t, cs, "fx_huge", map[string]any{})
		wantError(t, res, "more than 1048576 bytes")
		if len(text(res)) > 1000 {
			t.Errorf("the error carries %d bytes", len(text(res)))
		}
	})
	t.Run("garbage-output", func(t *testing.T) {
		wantError(t, call(t, cs, "fx_garbage", map[string]any{}), "invalid output")
	})
	t.Run("exec-outside-manifest", func(t *testing.T) {
		// Only the plugin directory and the executable's interpreters
		// may run: /bin/sh is not the manifest's.
		wantError(t, call(t, cs, "fx_spawn", map[string]any{"path": "/bin/sh"}), "permission denied")
	})
	t.Run("still-serving", func(t *testing.T) {
		if res := call(t, cs, "fx_echo", map[string]any{"text": "again"}); res.IsError {
			t.Fatalf("echo after failures: %q", text(res))
		}
	})
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// readPids reads the pids the hanging fixture wrote.
func readPids(t *testing.T, file string) []int {
	t.Helper()
	var pids []int
	waitFor(t, 10*time.Second, "the fixture's pid file", func() bool {
		data, err := os.ReadFile(file)
		if err != nil || !strings.HasSuffix(string(data), "\n") {
			return false
		}
		pids = nil
		for _, f := range strings.Fields(string(data)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return false
			}
			pids = append(pids, n)
		}
		return len(pids) == 2
	})
	return pids
}

func TestExternalHang(t *testing.T) {
	for _, mode := range []string{"per-call", "persistent"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, extPolicy("plugins/fx")+"tools:\n  timeout: 2\n  rate_limits:\n    default: 600\n")
			extra := ""
			if mode == "persistent" {
				extra = "mode: persistent\nargs: [--persistent]\n"
			}
			extPlugin(t, e, "fx", fxManifest("fx", "fx", extra))
			cs := e.connect(t, "")
			pidfile := filepath.Join(e.workspace, "pids")
			res := call(t, cs, "fx_hang", map[string]any{"pidfile": pidfile})
			wantError(t, res, "timed out")
			pids := readPids(t, pidfile)
			for _, pid := range pids {
				waitFor(t, 10*time.Second, fmt.Sprintf("pid %d (the plugin or the child it started with setsid) to be gone", pid), func() bool { return !alive(pid) })
			}
			_, r, _ := e.callRecords(t, "fx_hang")
			if r == nil || r["status"] != "timeout" {
				t.Errorf("tool_result: %v", r)
			}
			if res := call(t, cs, "fx_echo", map[string]any{"text": "after"}); res.IsError {
				t.Errorf("echo after the hang: %q", text(res))
			}
		})
	}
}

// A plugin that kills its launcher (it runs as the same user, in the same
// Landlock domain) does not leave behind what it started: the server is
// their subreaper, and sweeps them.
func TestExternalKillsItsLauncher(t *testing.T) {
	e := newEnv(t, extPolicy("plugins/fx")+"tools:\n  timeout: 20\n  rate_limits:\n    default: 600\n")
	extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
	cs := e.connect(t, "")
	pidfile := filepath.Join(e.workspace, "pids")
	res := call(t, cs, "fx_killer", map[string]any{"pidfile": pidfile})
	if !res.IsError {
		t.Errorf("a plugin that killed its launcher: %q, want an error result", text(res))
	}
	pids := readPids(t, pidfile)
	for _, pid := range pids {
		waitFor(t, 10*time.Second, fmt.Sprintf("pid %d (the plugin or the child it started with setsid) to be gone", pid), func() bool { return !alive(pid) })
	}
	if res := call(t, cs, "fx_echo", map[string]any{"text": "after"}); res.IsError {
		t.Errorf("echo after: %q", text(res))
	}
}

// A plugin that stops its launcher (SIGSTOP), which then neither counts
// nor kills its tree, does not keep it past the stop: the server, the
// launcher's parent, kills a stopped launcher and sweeps what it left.
// The call ends with that, long before its timeout.
func TestExternalStopsItsLauncher(t *testing.T) {
	for _, mode := range []string{"per-call", "persistent"} {
		t.Run(mode, func(t *testing.T) {
			extra := ""
			if mode == "persistent" {
				extra = "mode: persistent\nargs: [--persistent]\n"
			}
			e := newEnv(t, extPolicy("plugins/fx")+"tools:\n  timeout: 600\n  rate_limits:\n    default: 600\n")
			extPlugin(t, e, "fx", fxManifest("fx", "fx", extra))
			cs := e.connect(t, "")
			pidfile := filepath.Join(e.workspace, "pids")
			res := call(t, cs, "fx_stopper", map[string]any{"pidfile": pidfile})
			wantError(t, res, "launcher was stopped by a signal")
			if _, r, _ := e.callRecords(t, "fx_stopper"); r == nil || r["status"] != "tool_error" {
				t.Errorf("tool_result: %v", r)
			}
			for _, pid := range readPids(t, pidfile) {
				waitFor(t, 10*time.Second, fmt.Sprintf("pid %d (the plugin or the child it started with setsid) to be gone", pid), func() bool { return !alive(pid) })
			}
			if res := call(t, cs, "fx_echo", map[string]any{"text": "after"}); res.IsError {
				t.Errorf("echo after: %q", text(res))
			}
		})
	}
}

// TestExternalStderrIsCapped: a plugin that writes 2 MiB to stderr still
// answers (the server drains the pipe), and the server's log takes at
// most 16 KiB of it per call, or, from a persistent process, 1 MiB in
// all, saying how much it dropped.
func TestExternalStderrIsCapped(t *testing.T) {
	const written = 2 << 20
	for _, tc := range []struct {
		name, extra string
		max         int
	}{
		{"per-call", "", 16 << 10},
		{"persistent", "mode: persistent\nargs: [--persistent]\n", 1<<20 + 16<<10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, extPolicy("plugins/fx"))
			extPlugin(t, e, "fx", fxManifest("fx", "fx", tc.extra))
			cs, logs := e.connectLog(t)
			res := call(t, cs, "fx_noisy", map[string]any{})
			if res.IsError || text(res) != "quiet now" {
				t.Fatalf("fx_noisy = %v %q", res.IsError, text(res))
			}
			// A line of the noise is 64 bytes; once it is logged, what
			// reached the log is counted in lines.
			count := func() int {
				return strings.Count(logs.String(), "noise noise noise noise noise noise noise noise noise noise end")
			}
			waitFor(t, 10*time.Second, "stderr in the log", func() bool { return count() > 0 })
			if tc.name == "persistent" {
				// Its stderr is logged as it comes: wait for the log to
				// stop growing.
				for i, prev := 0, -1; i < 50 && prev != count(); i++ {
					prev = count()
					time.Sleep(200 * time.Millisecond)
				}
			}
			if got := count() * 64; got > tc.max || got >= written {
				t.Errorf("%d bytes of the plugin's stderr reached the log, want at most %d", got, tc.max)
			}
			if tc.name == "per-call" && !strings.Contains(logs.String(), "stderr_dropped_bytes=") {
				t.Errorf("the log does not say how much stderr it dropped")
			}
			if res := call(t, cs, "fx_echo", map[string]any{"text": "after"}); res.IsError {
				t.Errorf("a call after the noise: %q", text(res))
			}
		})
	}
}

func TestExternalPersistent(t *testing.T) {
	e := newEnv(t, extPolicy("plugins/fx"))
	extPlugin(t, e, "fx", fxManifest("fx", "fx", "mode: persistent\nargs: [--persistent]\n"))
	cs := e.connect(t, "")
	pidOf := func() string {
		t.Helper()
		res := call(t, cs, "fx_echo", map[string]any{"text": "p"})
		if res.IsError {
			t.Fatalf("echo: %q", text(res))
		}
		pid, _, _ := strings.Cut(strings.TrimPrefix(text(res), "pid="), " ")
		return pid
	}
	first := pidOf()
	if second := pidOf(); second != first {
		t.Fatalf("persistent mode started a second process: %s then %s", first, second)
	}
	wantError(t, call(t, cs, "fx_fail", map[string]any{}), "the tool says no")
	if again := pidOf(); again != first {
		t.Fatalf("a tool error restarted the process")
	}
	wantError(t, call(t, cs, "fx_crash", map[string]any{}), "crashed", "restarted")
	restarted := pidOf()
	if restarted == first {
		t.Fatalf("no new process after the crash")
	}
	wantError(t, call(t, cs, "fx_garbage", map[string]any{}), "invalid output")
	wantError(t, call(t, cs, "fx_huge", map[string]any{}), "more than 1048576 bytes")
	if pid := pidOf(); pid == restarted {
		t.Errorf("the process that answered garbage still serves")
	}
}

func TestExternalSandbox(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted sync.WaitGroup
	accepts := 0
	var mu sync.Mutex
	accepted.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepts++
			mu.Unlock()
			c.Close()
		}
	})
	port := ln.Addr().(*net.TCPAddr).Port
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherPort := other.Addr().(*net.TCPAddr).Port

	// The policy's TCP ports: 443 and the first listener's.
	network := fmt.Sprintf("network:\n  allowed_endpoints:\n    - host: localhost\n      ports: [%d]\n    - host: lite.duckduckgo.com\n      ports: [443]\n", port)
	e := newEnvNet(t, network, extPolicy("plugins/fx", "plugins/narrow", "plugins/part"))
	extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
	extPlugin(t, e, "narrow", fxManifest("narrow", "nw", "sandbox:\n  paths: []\n  ports: []\n"))
	secret := e.write(t, "secret.txt", "top secret")
	allowed := filepath.Join(e.workspace, "notes.txt")
	if err := os.WriteFile(allowed, []byte("workspace notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	// plugin part keeps one subdirectory of the workspace and one of the
	// policy's ports; it also names a directory and a port the policy
	// does not give, which it does not get: a manifest only narrows.
	sub := filepath.Join(e.workspace, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	inSub := filepath.Join(sub, "kept.txt")
	if err := os.WriteFile(inSub, []byte("kept for part"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	outside := filepath.Join(elsewhere, "outside.txt")
	if err := os.WriteFile(outside, []byte("not the policy's"), 0o644); err != nil {
		t.Fatal(err)
	}
	extPlugin(t, e, "part", fxManifest("part", "pt", fmt.Sprintf("sandbox:\n  paths: [%q, %q]\n  ports: [%d, %d]\n", sub, elsewhere, port, otherPort)))
	cs, logs := e.connectLog(t)
	if !strings.Contains(logs.String(), "tcp ports ["+strconv.Itoa(port)+" 443]") && !strings.Contains(logs.String(), "tcp ports [443 "+strconv.Itoa(port)+"]") {
		t.Errorf("the start-up log does not give plugin fx the policy's ports")
	}
	if !strings.Contains(logs.String(), "tcp ports []") {
		t.Errorf("the start-up log does not show plugin narrow's narrowed ports")
	}
	if !strings.Contains(logs.String(), "tcp ports ["+strconv.Itoa(port)+"]") {
		t.Errorf("the start-up log does not show plugin part's one port")
	}

	stopped := func(t *testing.T, tool string, args map[string]any, want string) {
		t.Helper()
		res := call(t, cs, tool, args)
		wantError(t, res, want)
		d, r, launches := e.callRecords(t, tool)
		if d["result"] != "allow" || r == nil || r["status"] != "tool_error" || launches != 1 {
			t.Errorf("audit of %s: decision %v, result %v, %d launches", tool, d["result"], r, launches)
		}
	}
	t.Run("read-allowed", func(t *testing.T) {
		if res := call(t, cs, "fx_read", map[string]any{"path": allowed}); res.IsError || !strings.Contains(text(res), "workspace notes") {
			t.Fatalf("reading a workspace file: %q", text(res))
		}
	})
	t.Run("read-denied", func(t *testing.T) {
		stopped(t, "fx_read", map[string]any{"path": secret}, "permission denied")
	})
	t.Run("read-policy-file", func(t *testing.T) {
		stopped(t, "fx_read", map[string]any{"path": e.policy}, "permission denied")
	})
	t.Run("write-other-plugin", func(t *testing.T) {
		stopped(t, "fx_write", map[string]any{"path": filepath.Join(e.dir, "plugins", "narrow", "fx")}, "permission denied")
	})
	t.Run("connect-allowed", func(t *testing.T) {
		if res := call(t, cs, "fx_connect", map[string]any{"port": port}); res.IsError {
			t.Fatalf("connecting to the policy's port: %q", text(res))
		}
	})
	t.Run("connect-denied", func(t *testing.T) {
		stopped(t, "fx_connect", map[string]any{"port": otherPort}, "permission denied")
	})
	t.Run("narrowed-read", func(t *testing.T) {
		stopped(t, "nw_read", map[string]any{"path": allowed}, "permission denied")
	})
	t.Run("narrowed-to-a-subdirectory", func(t *testing.T) {
		if res := call(t, cs, "pt_read", map[string]any{"path": inSub}); res.IsError || !strings.Contains(text(res), "kept for part") {
			t.Fatalf("reading in the kept subdirectory: %q", text(res))
		}
		stopped(t, "pt_read", map[string]any{"path": allowed}, "permission denied")
	})
	t.Run("narrowing-does-not-widen", func(t *testing.T) {
		stopped(t, "pt_read", map[string]any{"path": outside}, "permission denied")
		stopped(t, "pt_connect", map[string]any{"port": otherPort}, "permission denied")
	})
	t.Run("narrowed-to-a-port", func(t *testing.T) {
		if res := call(t, cs, "pt_connect", map[string]any{"port": port}); res.IsError {
			t.Fatalf("connecting to the kept port: %q", text(res))
		}
	})
	t.Run("narrowed-connect", func(t *testing.T) {
		mu.Lock()
		before := accepts
		mu.Unlock()
		stopped(t, "nw_connect", map[string]any{"port": port}, "permission denied")
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if accepts != before {
			t.Errorf("the narrowed plugin's connection was accepted")
		}
	})
}

// TestExternalPluginDirOffLimits: a tool cannot read or change a plugin
// directory even when it lies in an allowed path.
func TestExternalPluginDirOffLimits(t *testing.T) {
	e := newEnv(t, "")
	dir := filepath.Join(e.workspace, "plugins", "fx")
	e.write(t, "policy.yaml", strings.Replace(mustRead(t, e.policy), "audit:", extPolicy(dir)+"audit:", 1))
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(extFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "fx"), bin, 0o755)
	os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(fxManifest("fx", "fx", "")), 0o644)
	cs := e.connect(t, "")
	res := call(t, cs, "fixture_read", map[string]any{"path": filepath.Join(dir, "manifest.yaml")})
	wantError(t, res, "external plugin directory")
	res = call(t, cs, "fixture_write", map[string]any{"path": filepath.Join(dir, "fx"), "text": "#!/bin/sh\n"})
	wantError(t, res, "external plugin directory")
	// Nor can another plugin's process write it.
	res = call(t, cs, "fx_write", map[string]any{"path": filepath.Join(dir, "manifest.yaml")})
	wantError(t, res, "permission denied")
	if res := call(t, cs, "fx_echo", map[string]any{"text": "x"}); res.IsError {
		t.Fatalf("plugin in a workspace directory: %q", text(res))
	}
}

func TestExternalManifestErrors(t *testing.T) {
	e := newEnv(t, "")
	good := extPlugin(t, e, "good", fxManifest("good", "good", ""))
	sum := sha256.Sum256([]byte(mustRead(t, filepath.Join(good, "fx"))))
	pinned := extPlugin(t, e, "pinned", fxManifest("pinned", "pin", "sha256: "+hex.EncodeToString(sum[:])+"\n"))
	mismatch := extPlugin(t, e, "mismatch", fxManifest("mismatch", "mm", "sha256: "+strings.Repeat("ab", 32)+"\n"))
	missing := extPlugin(t, e, "missing", strings.Replace(fxManifest("missing", "ms", ""), "executable: fx", "executable: nothere", 1))
	dup := extPlugin(t, e, "dup", fxManifest("dup", "dup", "tools:\n  - name: search_tools\n    description: shadows a built-in tool\n"))
	dupExt := extPlugin(t, e, "dupext", fxManifest("dupext", "good", ""))
	badSchema := extPlugin(t, e, "badschema", fxManifest("badschema", "bs", "tools:\n  - name: bs_x\n    description: x\n    input_schema: {type: string}\n"))
	outside := extPlugin(t, e, "outside", strings.Replace(fxManifest("outside", "out", ""), "executable: fx", "executable: sh", 1))
	if err := os.Symlink("/bin/sh", filepath.Join(outside, "sh")); err != nil {
		t.Fatal(err)
	}
	unknown := extPlugin(t, e, "unknown", fxManifest("unknown", "unk", "colour: blue\n"))
	dirs := []string{good, pinned, mismatch, missing, dup, dupExt, badSchema, outside, unknown}
	e.write(t, "policy.yaml", strings.Replace(mustRead(t, e.policy), "audit:", extPolicy(dirs...)+"audit:", 1))

	cs, logs := e.connectLog(t)
	for _, c := range []struct{ dir, want string }{
		{mismatch, "sha256 mismatch: executable " + filepath.Join(mismatch, "fx")},
		{missing, "executable " + filepath.Join(missing, "nothere")},
		{dup, `tool \"search_tools\" is already served by built-in plugin discovery`},
		{dupExt, `tool \"good_echo\" is already served by external plugin ` + filepath.Join(good, "manifest.yaml")},
		{badSchema, "input schema must be an object schema"},
		{outside, "outside the plugin directory"},
		{unknown, "manifest.yaml:6: unknown key colour"},
	} {
		if !strings.Contains(logs.String(), filepath.Join(c.dir, "manifest.yaml")) || !strings.Contains(logs.String(), c.want) {
			t.Errorf("the log does not name %s with %q", filepath.Join(c.dir, "manifest.yaml"), c.want)
		}
	}
	for _, tool := range []string{"good_echo", "pin_echo"} {
		if res := call(t, cs, tool, map[string]any{"text": "ok"}); res.IsError {
			t.Errorf("%s (a good plugin beside bad ones): %q", tool, text(res))
		}
	}
	// The pin holds at every start: the pinned executable replaced after
	// loading is refused, and taken again once it is restored.
	fx := filepath.Join(pinned, "fx")
	orig := mustRead(t, fx)
	replace := func(data string) {
		t.Helper()
		if err := os.WriteFile(fx+".new", []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(fx+".new", fx); err != nil {
			t.Fatal(err)
		}
	}
	replace(orig + "\x00")
	if res := call(t, cs, "pin_echo", map[string]any{"text": "ok"}); !res.IsError {
		t.Errorf("pin_echo ran a replaced executable: %q", text(res))
	}
	// The server logs the refusal before it answers, but its stderr
	// reaches the buffer on a goroutine of its own.
	waitFor(t, 10*time.Second, "the log to say the replaced executable was refused", func() bool {
		return strings.Contains(logs.String(), "sha256 mismatch: executable "+fx)
	})
	replace(orig)
	if res := call(t, cs, "pin_echo", map[string]any{"text": "ok"}); res.IsError {
		t.Errorf("pin_echo after the executable was restored: %q", text(res))
	}
	res := call(t, cs, "mm_echo", map[string]any{"text": "x"})
	wantError(t, res, "not registered")
	// Each left out is in the audit log too, by plugin name and reason.
	for _, c := range []struct{ name, want string }{
		{"mismatch", "sha256 mismatch"},
		{"missing", filepath.Join(missing, "nothere")},
		{"dup", "already served by built-in plugin discovery"},
		{"outside", "outside the plugin directory"},
	} {
		wantReason(t, e.leftOutRecord(t, "plugin", "plugin", c.name), c.want)
	}
	list, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		if tl.Name == "search_tools" && strings.Contains(tl.Description, "shadows") {
			t.Errorf("a manifest replaced a built-in tool")
		}
	}

	t.Run("policy-check-warns", func(t *testing.T) {
		out, err := exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
		if code := exitCode(err); code != 0 || !strings.Contains(string(out), "warning: external plugin left out: "+filepath.Join(mismatch, "manifest.yaml")) {
			t.Errorf("policy check: exit %d, %s", code, out)
		}
	})
	t.Run("strict", func(t *testing.T) {
		e.write(t, "policy.yaml", strings.Replace(mustRead(t, e.policy), "plugins:\n", "plugins:\n  strict: true\n", 1))
		out, err := exec.Command(binPath, "policy", "check", "--policy", e.policy).CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), filepath.Join(mismatch, "manifest.yaml")) {
			t.Errorf("policy check with plugins.strict: exit %d, %s", code, out)
		}
		cmd := e.command()
		cmd.Stdin = strings.NewReader("")
		out, err = cmd.CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), "sha256 mismatch") {
			t.Errorf("serve with plugins.strict: exit %d, %s", code, out)
		}
	})
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestExternalWithoutLandlock: where children cannot be confined, a
// plugin is left out (the log says why) unless the policy opts into
// unconfined children, which the log says too.
func TestExternalWithoutLandlock(t *testing.T) {
	for _, unconfined := range []bool{false, true} {
		t.Run(fmt.Sprintf("unconfined=%v", unconfined), func(t *testing.T) {
			extra := extPolicy("plugins/fx")
			if unconfined {
				extra += "commands:\n  unconfined: true\n"
			}
			e := newEnv(t, extra)
			extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
			e.vars = append(e.vars, "MCP_SECURE_NO_LANDLOCK=1")
			cs, logs := e.connectLog(t)
			res := call(t, cs, "fx_echo", map[string]any{"text": "x"})
			if !unconfined {
				wantError(t, res, "not registered")
				if !strings.Contains(logs.String(), "cannot be confined here") || !strings.Contains(logs.String(), filepath.Join(e.dir, "plugins", "fx", "manifest.yaml")) {
					t.Errorf("the log does not say why plugin fx is left out")
				}
				return
			}
			if res.IsError {
				t.Fatalf("unconfined by policy: %q", text(res))
			}
			if !strings.Contains(logs.String(), "unconfined by policy") {
				t.Errorf("the log does not say plugin fx runs unconfined")
			}
		})
	}
}

// A reload that drops a plugin directory from plugins.external keeps it:
// the plugin runs on from it, so it stays the server's own and tools may
// still not write it (else its program could be swapped under it).
func TestExternalReloadKeepsPluginDirs(t *testing.T) {
	e := newEnv(t, "")
	e.extraArgs = []string{"--reload-interval", "0"}
	base := mustRead(t, e.policy)
	dir := filepath.Join(e.workspace, "plugins", "fx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(extFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fx"), bin, 0o755)
	os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(fxManifest("fx", "fx", "")), 0o644)
	e.write(t, "policy.yaml", strings.Replace(base, "audit:", extPolicy(dir)+"audit:", 1))
	rc := e.connectReload(t, "2025-11-25")
	e.write(t, "policy.yaml", base)
	rc.hup(t)
	r := e.waitReloads(t, 1)[0]
	pc, _ := r["policy"].(map[string]any)
	if r["result"] != "allow" || !strings.Contains(fmt.Sprint(pc["kept"]), "plugins.external") {
		t.Fatalf("reload record = %v, want allow keeping plugins.external", r)
	}
	res := call(t, rc.cs, "fixture_write", map[string]any{"path": filepath.Join(dir, "fx"), "text": "#!/bin/sh\n"})
	wantError(t, res, "external plugin directory")
	e.findRecord(t, map[string]any{"kind": "filesystem", "result": "deny"})
	if res := call(t, rc.cs, "fx_echo", map[string]any{"text": "x"}); res.IsError {
		t.Fatalf("the kept plugin: %q", text(res))
	}
}

// A client that closes its end of stdout does not kill the server
// (SIGPIPE): the write fails, the call in flight runs to its end (here
// its timeout) and is audited, and the server exits 0.
func TestE2EClosedOutputFinishesCalls(t *testing.T) {
	e := newEnv(t, extPolicy("plugins/fx")+"tools:\n  timeout: 2\n  rate_limits:\n    default: 600\n")
	extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
	cmd := e.command()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = outW
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	out := bufio.NewReader(outR)
	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatalf("write to server: %v", err)
		}
	}
	send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`)
	if _, err := out.ReadBytes('\n'); err != nil {
		t.Fatal(err)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	pidfile := filepath.Join(e.workspace, "pids")
	send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fx_hang","arguments":{"pidfile":"` + pidfile + `"}}}`)
	waitFor(t, 10*time.Second, "the hanging call to start", func() bool { _, err := os.Stat(pidfile); return err == nil })
	outR.Close() // the client goes away from the output
	send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the server ended with %v after its output was closed, want exit 0", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the server did not end after its output was closed")
	}
	if _, r, _ := e.callRecords(t, "fx_hang"); r == nil || r["status"] != "timeout" {
		t.Errorf("tool_result of the call in flight: %v", r)
	}
}

// A call the client cancels is stopped and audited, not answered, and
// keeps its id until it has ended: a request reusing the id at once is
// refused as a duplicate, and one sent after the call ended gets its own
// answer, not the cancelled call's.
func TestE2ECancelledCallKeepsItsID(t *testing.T) {
	e := newEnv(t, extPolicy("plugins/fx")+"tools:\n  timeout: 60\n  rate_limits:\n    default: 600\n")
	extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
	r := e.startRaw(t)
	r.initialize()
	pidfile := filepath.Join(e.workspace, "pids")
	r.send(`{"jsonrpc":"2.0","id":"r0","method":"tools/call","params":{"name":"fx_hang","arguments":{"pidfile":"` + pidfile + `"}}}`)
	waitFor(t, 10*time.Second, "the hanging call to start", func() bool { _, err := os.Stat(pidfile); return err == nil })
	// The cancel and the reuse in one write: the call cannot have ended
	// (its process tree is still to be killed) when the reuse is read.
	r.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"r0"}}` + "\n" +
		`{"jsonrpc":"2.0","id":"r0","method":"ping"}`)
	m := r.recv()
	if m["id"] != "r0" || !strings.Contains(fmt.Sprint(m["error"]), "already in flight") {
		t.Fatalf("the reused id while the cancelled call runs: %v, want a duplicate refusal", m)
	}
	waitFor(t, 20*time.Second, "the cancelled call's tool_result", func() bool {
		_, res, _ := e.callRecords(t, "fx_hang")
		return res != nil
	})
	if _, res, _ := e.callRecords(t, "fx_hang"); res["status"] != "cancelled" {
		t.Errorf("tool_result of the cancelled call: %v", res)
	}
	r.send(`{"jsonrpc":"2.0","id":"r0","method":"ping"}`)
	if m := r.recv(); m["id"] != "r0" || fmt.Sprint(m["result"]) != "map[]" {
		t.Fatalf("the id reused after the cancelled call ended: %v, want the ping's own answer", m)
	}
}
