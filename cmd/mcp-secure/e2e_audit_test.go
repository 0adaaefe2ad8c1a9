//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// connectAs starts the binary and connects a client with the given name,
// keeping the server's stderr.
func (e *env) connectAs(t *testing.T, clientName string) (*mcp.ClientSession, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: clientName, Version: "9.9"}, nil)
	cmd := e.command()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, stderr
}

var markerRE = regexp.MustCompile(`\[REDACTED:[0-9a-f]{16}\]`)

// TestE2EAuditRedactionCannotBlind: a fake token in a command hides only
// itself; the tool_call and command records both show what ran.
func TestE2EAuditRedactionCannotBlind(t *testing.T) {
	e := newEnv(t, "commands:\n  blocked: [curl, wget]\n")
	cs, _ := e.connectAs(t, "e2e-client")
	for _, tc := range []struct {
		name, script, want string
	}{
		{"deny/bearer-comment", "echo pwned > f; id # Bearer AAAAAAAAAAAA", "echo pwned > f; id # Bearer [R]"},
		{"deny/aws-key-comment", "echo pwned > g; id #AKIAIOSFODNN7EXAMPLE", "echo pwned > g; id #[R]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, cs, "fixture_run", map[string]any{"argv": []string{"sh", "-c", tc.script}, "dir": e.workspace})
			if res.IsError {
				t.Fatalf("run failed: %s", text(res))
			}
			callRec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "fixture_run", "result": "allow"})
			argv := callRec["input"].(map[string]any)["arguments"].(map[string]any)["argv"].([]any)
			if got := markerRE.ReplaceAllString(argv[2].(string), "[R]"); got != tc.want {
				t.Errorf("tool_call record shows %q, want %q", got, tc.want)
			}
			cmdRec := e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run", "result": "allow"})
			cargv := cmdRec["input"].(map[string]any)["argv"].([]any)
			if got := markerRE.ReplaceAllString(cargv[2].(string), "[R]"); got != tc.want {
				t.Errorf("command record shows %q, want %q", got, tc.want)
			}
			if cmdRec["parent_decision_id"] != callRec["decision_id"] {
				t.Errorf("command record not linked to its call")
			}
		})
	}
	data, _ := os.ReadFile(e.audit)
	for _, secret := range []string{"AAAAAAAAAAAA", "AKIAIOSFODNN7EXAMPLE"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("audit log contains %q", secret)
		}
	}
}

// TestE2EAuditRedactsEveryClientString: secrets in argument keys and
// values, a secret-shaped tool name and client name are replaced in the
// file, only their secret part.
func TestE2EAuditRedactsEveryClientString(t *testing.T) {
	e := newEnv(t, "")
	const (
		gh   = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
		tok  = "Bearer ZZZZZZZZZZZZ"
		pass = "hunter2hunter2"
		dbpw = "s3cr3tDbPw"
	)
	cs, _ := e.connectAs(t, "client "+tok)
	call(t, cs, "fixture_read_plain", map[string]any{
		"file":          e.workspace + "/none.txt",
		"password":      pass,
		"note " + gh:    "postgres://app:" + dbpw + "@db.internal/app",
		"authorization": "Basic dXNlcjpodW50ZXIy",
	})
	res := call(t, cs, "tool_"+gh, map[string]any{"q": "x"})
	if !res.IsError {
		t.Fatalf("unknown tool allowed: %s", text(res))
	}
	cs.Close()
	data, err := os.ReadFile(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{gh, "ZZZZZZZZZZZZ", pass, dbpw, "dXNlcjpodW50ZXIy"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("audit log contains %q", secret)
		}
	}
	log := markerRE.ReplaceAllString(string(data), "[R]")
	for _, keep := range []string{`"name":"client Bearer [R]"`, `"tool":"tool_[R]"`, `"note [R]":"postgres://app:[R]@db.internal/app"`,
		`"password":"[R]"`, `"authorization":"[R]"`} {
		if !strings.Contains(log, keep) {
			t.Errorf("audit log lacks %s", keep)
		}
	}
}

// TestE2EAuditHugeToolName: a 1 MB tool name writes small records.
func TestE2EAuditHugeToolName(t *testing.T) {
	e := newEnv(t, "")
	cs, _ := e.connectAs(t, "e2e-client")
	call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/x"}) // the log exists
	before, _ := os.Stat(e.audit)
	// The transport takes messages up to 1 MiB: a 1,000,000-byte name.
	name := strings.Repeat("A", 1000*1000)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{"arg": strings.Repeat("b", 20000)}})
	if err != nil {
		t.Fatalf("tools/call with a 1 MB name: %.200v", err)
	}
	if !res.IsError {
		t.Fatal("a 1 MB tool name was allowed")
	}
	after, _ := os.Stat(e.audit)
	written := after.Size() - before.Size()
	t.Logf("audit bytes for one denied call with a 1 MB tool name: %d", written)
	if written > 16<<10 {
		t.Errorf("%d audit bytes for one denied call", written)
	}
	rec := e.records(t)
	last := rec[len(rec)-1]
	tool, _ := last["tool"].(map[string]any)
	if tool["truncated"] != true || tool["bytes"] != float64(1000*1000) {
		t.Errorf("tool = %v", last["tool"])
	}
}

// TestE2EAuditVerify: the log the server wrote verifies; a flipped byte or
// a deleted line is reported with its line and exit code 1.
func TestE2EAuditVerify(t *testing.T) {
	e := newEnv(t, "")
	cs, _ := e.connectAs(t, "e2e-client")
	for i := range 4 {
		call(t, cs, "fixture_read", map[string]any{"path": fmt.Sprintf("%s/f%d", e.workspace, i)})
	}
	cs.Close()
	verify := func(files ...string) (int, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, binPath, append([]string{"audit", "verify"}, files...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := verify(e.audit); code != 0 || !strings.Contains(out, "ok:") {
		t.Fatalf("verify of the server's log: exit %d: %s", code, out)
	}
	if code, _ := verify(); code != 2 {
		t.Errorf("verify without files: exit %d, want 2", code)
	}
	data, _ := os.ReadFile(e.audit)
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) < 6 {
		t.Fatalf("only %d lines", len(lines))
	}
	flipped := bytes.Clone(data)
	off := len(lines[0]) + len(lines[1]) + len(lines[2]) + 20 // inside line 4
	flipped[off] ^= 0x01
	deleted := bytes.Join([][]byte{lines[0], lines[1], lines[3], lines[4]}, nil)
	torn := data[:len(data)-30]
	for _, tc := range []struct {
		name string
		data []byte
		line string
	}{
		{"deny/flipped-byte", flipped, ":4:"},
		{"deny/deleted-line", deleted, ":3:"},
		{"deny/torn-tail", torn, fmt.Sprintf(":%d:", bytes.Count(torn, []byte("\n"))+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(e.dir, strings.ReplaceAll(tc.name, "/", "-")+".log")
			os.WriteFile(p, tc.data, 0o600)
			code, out := verify(p)
			if code != 1 || !strings.Contains(out, filepath.Base(p)+tc.line) {
				t.Errorf("exit %d, output %q; want exit 1 naming line %s", code, out, tc.line)
			}
		})
	}
}

// TestE2EAuditFileRefused: a symlink or a FIFO at audit.log_file stops
// serve at once, with a clear message.
func TestE2EAuditFileRefused(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		make       func(e *env) error
	}{
		{"deny/symlink", "symbolic link", func(e *env) error {
			target := filepath.Join(e.dir, "elsewhere.log")
			os.WriteFile(target, []byte("untouched\n"), 0o644)
			return os.Symlink(target, e.audit)
		}},
		{"deny/fifo", "not a regular file", func(e *env) error { return syscall.Mkfifo(e.audit, 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			if err := os.MkdirAll(filepath.Dir(e.audit), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.make(e); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := e.command()
			cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
			cmd.Env = e.command().Env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Stdin = strings.NewReader("")
			start := time.Now()
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("serve hung on the audit file (%v)", time.Since(start))
			}
			if err == nil || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("serve: %v, stderr %q; want a failure saying %q", err, stderr.String(), tc.want)
			}
			if data, _ := os.ReadFile(filepath.Join(e.dir, "elsewhere.log")); tc.name == "deny/symlink" && string(data) != "untouched\n" {
				t.Errorf("symlink target written: %q", data)
			}
		})
	}
}

// TestE2EAuditFileReplacedFailsClosed: replacing the log under a running
// server makes the next call fail closed, and stderr says why.
func TestE2EAuditFileReplacedFailsClosed(t *testing.T) {
	e := newEnv(t, "")
	os.WriteFile(filepath.Join(e.workspace, "a.txt"), []byte("content"), 0o600)
	cs, stderr := e.connectAs(t, "e2e-client")
	if res := call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/a.txt"}); res.IsError {
		t.Fatalf("first call: %s", text(res))
	}
	forged := e.audit + ".forged"
	os.WriteFile(forged, []byte(`{"forged":true}`+"\n"), 0o600)
	if err := os.Rename(forged, e.audit); err != nil {
		t.Fatal(err)
	}
	res := call(t, cs, "fixture_read", map[string]any{"path": e.workspace + "/a.txt"})
	if !res.IsError || strings.Contains(text(res), "content") {
		t.Fatalf("call after the log was replaced: isError=%v %q", res.IsError, text(res))
	}
	if !strings.Contains(text(res), "audit record could not be written") {
		t.Errorf("result does not say why: %q", text(res))
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), "no longer names the open file") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "no longer names the open file") {
		t.Errorf("stderr does not say why: %s", stderr.String())
	}
	if data, _ := os.ReadFile(e.audit); string(data) != `{"forged":true}`+"\n" {
		t.Errorf("the server wrote into the replacement: %q", data)
	}
}

// TestE2EStderrRedacted: a failed fetch's log line keeps the URL's query
// keys but not their values.
func TestE2EStderrRedacted(t *testing.T) {
	port := unusedPort(t)
	e := newEnvNet(t, loopbackNetwork(22), "")
	cs, stderr := e.connectAs(t, "e2e-client")
	res := call(t, cs, "fixture_fetch", map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d/x?q=topsecretquery&token=tkvalue", port)})
	if !res.IsError {
		t.Fatalf("fetch to a closed port succeeded: %s", text(res))
	}
	cs.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), "tool failed") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out := stderr.String()
	if !strings.Contains(out, "tool failed") || !strings.Contains(out, "/x?q=") {
		t.Fatalf("no tool failure with its URL on stderr: %s", out)
	}
	for _, leak := range []string{"topsecretquery", "tkvalue"} {
		if strings.Contains(out, leak) {
			t.Errorf("stderr leaks %q: %s", leak, out)
		}
	}
	// stderr and the audit log fingerprint the token alike.
	tokenRE := regexp.MustCompile(`token=(\[REDACTED:[0-9a-f]{16}\])`)
	data, _ := os.ReadFile(e.audit)
	inLog, inStderr := tokenRE.FindSubmatch(data), tokenRE.FindStringSubmatch(out)
	if inLog == nil || inStderr == nil || string(inLog[1]) != inStderr[1] {
		t.Errorf("token fingerprints differ: audit %q, stderr %q", inLog, inStderr)
	}
}

// TestE2EAuditUserMasks: mask rules from rego.modules erase and replace
// parts of the records, which list what was done.
func TestE2EAuditUserMasks(t *testing.T) {
	e := newEnv(t, "commands:\n  allowed: [echo]\nrego:\n  modules: [rules/masks.rego]\n")
	os.MkdirAll(filepath.Join(e.dir, "rules"), 0o755)
	e.write(t, "rules/masks.rego", `package mcp.audit

mask contains "/input/arguments/note" if input.tool == "fixture_run"

mask contains {"op": "upsert", "path": "/input/argv/1", "value": "[flag hidden]"} if input.kind == "command"
`)
	cs, _ := e.connectAs(t, "e2e-client")
	res := call(t, cs, "fixture_run", map[string]any{"argv": []string{"echo", "-n", "masked-run"}, "dir": e.workspace, "note": "private note"})
	if res.IsError || text(res) != "masked-run" {
		t.Fatalf("run: isError=%v %q", res.IsError, text(res))
	}
	callRec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "fixture_run"})
	cmdRec := e.findRecord(t, map[string]any{"kind": "command", "tool": "fixture_run"})
	if fmt.Sprint(cmdRec["masked"]) != "[/input/argv/1]" || fmt.Sprint(cmdRec["input"].(map[string]any)["argv"]) != "[echo [flag hidden] masked-run]" {
		t.Errorf("command record not masked: %v", cmdRec)
	}
	if fmt.Sprint(callRec["erased"]) != "[/input/arguments/note]" {
		t.Errorf("tool_call record erased %v", callRec["erased"])
	}
	if data, _ := os.ReadFile(e.audit); bytes.Contains(data, []byte("private note")) {
		t.Error("the erased argument is in the log")
	}
	if _, err := exec.Command(binPath, "audit", "verify", e.audit).Output(); err != nil {
		t.Errorf("masked log does not verify: %v", err)
	}
}

// TestE2EAuditRotation: audit.max_size rotates the log, audit.retention
// bounds the old files, and the chain verifies across them.
func TestE2EAuditRotation(t *testing.T) {
	e := newEnv(t, "")
	data, _ := os.ReadFile(e.policy)
	policy := strings.Replace(string(data), "audit:\n", "audit:\n  max_size: 128KiB\n  retention: 2\n  durability: fsync\n", 1)
	os.WriteFile(e.policy, []byte(policy), 0o644)
	cs, _ := e.connectAs(t, "e2e-client")
	pad := strings.Repeat("p", 3000)
	for i := range 150 {
		call(t, cs, "fixture_read_plain", map[string]any{"file": fmt.Sprintf("%s/n%d", e.workspace, i), "pad": pad})
	}
	cs.Close()
	files := []string{e.audit + ".2", e.audit + ".1", e.audit}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if st.Size() > 128<<10 || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes, mode %o", f, st.Size(), st.Mode().Perm())
		}
	}
	if _, err := os.Stat(e.audit + ".3"); err == nil {
		t.Error("a third old file kept with retention 2")
	}
	out, err := exec.Command(binPath, append([]string{"audit", "verify"}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("verify across rotated files: %v: %s", err, out)
	}
}

// TestE2ETwoServersOneLog: two servers (two clients on one policy) append
// to one audit log that rotates: neither refuses calls, and the rotated
// files verify as one chain.
func TestE2ETwoServersOneLog(t *testing.T) {
	e := newEnv(t, "  max_size: 128KiB\n  retention: 20\n")
	a, b := e.connect(t, "2025-11-25"), e.connect(t, "2025-11-25")
	for i := range 120 {
		for _, cs := range []*mcp.ClientSession{a, b} {
			if res := call(t, cs, "search_tools", map[string]any{"query": fmt.Sprintf("bug tracker %d %s", i, strings.Repeat("x", 150))}); res.IsError {
				t.Fatalf("call %d refused: %q", i, text(res))
			}
		}
	}
	a.Close()
	b.Close()
	var files []string
	for n := 20; n >= 1; n-- {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", e.audit, n)); err == nil {
			files = append(files, fmt.Sprintf("%s.%d", e.audit, n))
		}
	}
	if len(files) == 0 {
		t.Fatal("the log never rotated")
	}
	out, err := exec.Command(binPath, append([]string{"audit", "verify"}, append(files, e.audit)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}
