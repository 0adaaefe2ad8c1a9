package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// binPath is the mcp-secure binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcp-secure-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "mcp-secure")
	build := exec.Command("go", "build", "-tags", "e2etools", "-ldflags", "-X main.version=e2e", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mcp-secure:", err)
		os.Exit(1)
	}
	// The launcher beside it, as installed: sandboxed children start
	// through it (e2e_launcher_test.go covers the server without it).
	build = exec.Command("go", "build", "-o", filepath.Join(dir, sandbox.LauncherName), "../mcp-secure-launch")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mcp-secure-launch:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one server's world: a policy file, a workspace and an audit log
// under a temporary directory.
type env struct {
	dir, policy, audit, workspace string
	vars                          []string // extra environment of the server
	extraArgs                     []string // extra serve flags
}

// defaultNetwork is the network section of a test policy.
const defaultNetwork = `network:
  allowed_endpoints:
    - host: lite.duckduckgo.com
      ports: [443]
  allow_dns: true
  dns_allowlist: [lite.duckduckgo.com]
`

// newEnv writes a policy whose audit log and workspace live in a fresh
// temporary directory. extra is appended to the YAML (tools, rego, ...).
func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	return newEnvNet(t, defaultNetwork, extra)
}

// newEnvNet is newEnv with its own network section.
func newEnvNet(t *testing.T, network, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		dir:       dir,
		policy:    filepath.Join(dir, "policy.yaml"),
		audit:     filepath.Join(dir, "logs", "audit.log"),
		workspace: filepath.Join(dir, "ws"),
	}
	if err := os.MkdirAll(e.workspace, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`version: "1.0"
%s
filesystem:
  allowed_paths: ["%s/**"]
  denied_paths: ["**/.env"]
audit:
  log_file: "%s"
%s`, network, e.workspace, e.audit, extra)
	if !strings.Contains(extra, "tools:") {
		yaml += "tools:\n  timeout: 10\n  rate_limits:\n    default: 600\n"
	}
	e.write(t, "policy.yaml", yaml)
	return e
}

func (e *env) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) command(args ...string) *exec.Cmd {
	args = append(append([]string(nil), e.extraArgs...), args...)
	cmd := exec.Command(binPath, append([]string{"serve", "--policy", e.policy}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"))
	cmd.Env = append(cmd.Env, e.vars...)
	return cmd
}

// connect starts the binary and connects a Go SDK client over its pipes.
func (e *env) connect(t *testing.T, protocol string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1.2.3"}, nil)
	var opts *mcp.ClientSessionOptions
	if protocol != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: protocol}
	}
	cmd := e.command()
	cmd.Stderr = &testWriter{t: t}
	var transport mcp.Transport = &mcp.CommandTransport{Command: cmd}
	if w := transcript(t); w != nil {
		transport = &mcp.LoggingTransport{Transport: transport, Writer: w}
	}
	cs, err := client.Connect(ctx, transport, opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// transcript opens a file for the session's wire transcript when
// MCP_SECURE_TRANSCRIPTS names a directory: every message the client reads
// ("read: ...") and writes ("write: ..."). `make test` hands the
// transcripts to test/clients, which checks each message the server wrote
// against the MCP schema the TypeScript SDK ships.
func transcript(t *testing.T) io.Writer {
	dir := os.Getenv("MCP_SECURE_TRANSCRIPTS")
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	f, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &lockedWriter{w: f}
}

// lockedWriter serialises the transport's concurrent writes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// records reads the audit log.
func (e *env) records(t *testing.T) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(e.audit)
	if err != nil {
		t.Fatalf("reading audit log: %v", err)
	}
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line is not JSON: %v: %q", err, line)
		}
		out = append(out, r)
	}
	return out
}

// findRecord returns the last audit record matching every key/value.
func (e *env) findRecord(t *testing.T, want map[string]any) map[string]any {
	t.Helper()
	recs := e.records(t)
	for i := len(recs) - 1; i >= 0; i-- {
		ok := true
		for k, v := range want {
			if recs[i][k] != v {
				ok = false
				break
			}
		}
		if ok {
			return recs[i]
		}
	}
	t.Fatalf("no audit record matching %v in %d records", want, len(recs))
	return nil
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("server: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func call(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// rawServer is the binary driven through raw pipes, for input no SDK
// client would send.
type rawServer struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func (e *env) startRaw(t *testing.T) *rawServer {
	t.Helper()
	cmd := e.command()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &rawServer{t: t, cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20)}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	return r
}

func (r *rawServer) send(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		r.t.Fatalf("write to server: %v", err)
	}
}

// recv reads one message, failing the test after a timeout.
func (r *rawServer) recv() map[string]any {
	r.t.Helper()
	type res struct {
		line []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := r.out.ReadBytes('\n')
		ch <- res{l, err}
	}()
	select {
	case got := <-ch:
		if got.err != nil {
			r.t.Fatalf("reading server output: %v", got.err)
		}
		var m map[string]any
		if err := json.Unmarshal(got.line, &m); err != nil {
			r.t.Fatalf("server wrote a line that is not a JSON object: %v: %q", err, got.line)
		}
		return m
	case <-time.After(20 * time.Second):
		r.t.Fatal("no answer from the server within 20s")
		return nil
	}
}

// initialize performs the 2025-11-25 handshake over raw pipes.
func (r *rawServer) initialize() {
	r.t.Helper()
	r.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`)
	if m := r.recv(); m["result"] == nil {
		r.t.Fatalf("initialize failed: %v", m)
	}
	r.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// syncBuffer is a buffer a server's stderr copier writes while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
