//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Upstream servers and external plugins start through the one launcher
// door: a #! chain of any depth the door follows is confined as a
// whole, and an environment no child may be given stops the one server
// or plugin that asks for it, naming the key, while the rest serve.

// TestE2EUpstreamShebangChain: the upstream's command is a script whose
// #! interpreter is itself a script run by /usr/bin/env node, so the
// kernel runs the command through three programs (wrap, env, node). The
// door follows the whole chain: the server starts, serves, and is still
// confined (a file outside the policy is refused, the start audited).
func TestE2EUpstreamShebangChain(t *testing.T) {
	u := newUpstreamEnv(t, defaultNetwork, "", "")
	wrap := filepath.Join(u.code, "wrap")
	launch := filepath.Join(u.code, "launch")
	// wrap is CommonJS run by node: it imports the module its last
	// argument names (server.mjs, from args).
	if err := os.WriteFile(wrap, []byte("#!/usr/bin/env node\nimport(process.argv[process.argv.length - 1]);\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(launch, []byte("#!"+wrap+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	u.write(t, "policy.yaml", strings.Replace(mustRead(t, u.policy), "command: node\n", "command: "+launch+"\n", 1))
	if err := os.WriteFile(filepath.Join(u.workspace, "notes.txt"), []byte("workspace notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	cs := u.connectSlow(t)
	if res := call(t, cs, "demo__echo", map[string]any{"text": "through the chain"}); res.IsError || text(res) != "through the chain" {
		t.Fatalf("echo = %v %q", res.IsError, text(res))
	}
	if res := call(t, cs, "demo__read_file", map[string]any{"path": filepath.Join(u.workspace, "notes.txt")}); res.IsError || !strings.Contains(text(res), "workspace notes") {
		t.Fatalf("workspace read = %v %q", res.IsError, text(res))
	}
	res := call(t, cs, "demo__read_file", map[string]any{"path": u.secret})
	if !res.IsError || !strings.Contains(text(res), "EACCES") || strings.Contains(text(res), "the secret") {
		t.Fatalf("read outside the policy = %v %q, want EACCES from the sandbox", res.IsError, text(res))
	}
	rec := u.findRecord(t, map[string]any{"kind": "tool_call", "tool": "demo__read_file"})
	u.findRecord(t, map[string]any{"kind": "tool_result", "decision_id": rec["decision_id"], "status": "tool_error"})
	cs.Close()
	start := u.findRecord(t, map[string]any{"kind": "upstream", "result": "allow"})
	in := start["input"].(map[string]any)
	if in["server"] != "demo" || in["executable"] != launch || in["pid"] == nil {
		t.Errorf("start record input %v", in)
	}
}

// TestE2EUpstreamChainTooDeep: a #! chain deeper than the door follows
// is refused at start, naming the server; the other servers and the
// built-in tools serve.
func TestE2EUpstreamChainTooDeep(t *testing.T) {
	u := newUpstreamEnv(t, defaultNetwork, "", "")
	prev := "/bin/sh"
	for i := range 6 {
		p := filepath.Join(u.code, fmt.Sprintf("level%d", i))
		if err := os.WriteFile(p, []byte("#!"+prev+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		prev = p
	}
	u.write(t, "policy.yaml", strings.Replace(mustRead(t, u.policy), "servers:\n", "servers:\n  deep:\n    command: "+prev+"\n", 1))
	var stderr syncBuffer
	cs := u.connectLogging(t, &stderr)
	if res := call(t, cs, "demo__echo", map[string]any{"text": "still here"}); res.IsError || text(res) != "still here" {
		t.Fatalf("demo__echo beside the refused server = %v %q", res.IsError, text(res))
	}
	cs.Close()
	if !strings.Contains(stderr.String(), "upstream server not started") || !strings.Contains(stderr.String(), "nested #! interpreters") {
		t.Errorf("the log does not say why deep was not started:\n%s", stderr.String())
	}
	upstreamRecord(t, u.env, "deep", "deny")
}

// TestE2EUpstreamRefusedEnv: servers whose env would hand a child a
// loader or interpreter variable (NODE_OPTIONS), or the server's own
// telemetry headers (as a key or as a ${VAR} source), are not started:
// the log names the key, a deny record says why, and the good server
// and the built-in tools serve.
func TestE2EUpstreamRefusedEnv(t *testing.T) {
	u := newUpstreamEnv(t, defaultNetwork, "", "")
	// The bad servers would run the same node program if they started.
	bad := func(name, env string) string {
		return fmt.Sprintf("  %s:\n    command: node\n    args: [\"%s/server.mjs\"]\n    env:\n      %s\n    sandbox:\n      read: [\"%s\"]\n", name, u.code, env, u.code)
	}
	servers := bad("inject", `NODE_OPTIONS: "--require /tmp/evil.js"`) +
		bad("otelkey", `OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer x"`) +
		bad("otelsrc", `HEADERS: "${OTEL_EXPORTER_OTLP_HEADERS}"`)
	u.write(t, "policy.yaml", strings.Replace(mustRead(t, u.policy), "servers:\n", "servers:\n"+servers, 1))
	const secret = "authorization=Bearer otel-secret-5c1e"
	u.vars = append(u.vars, "OTEL_EXPORTER_OTLP_HEADERS="+secret)
	var stderr syncBuffer
	cs := u.connectLogging(t, &stderr)
	if res := call(t, cs, "demo__echo", map[string]any{"text": "good"}); res.IsError || text(res) != "good" {
		t.Fatalf("demo__echo = %v %q", res.IsError, text(res))
	}
	if res := call(t, cs, "search_tools", map[string]any{"query": "echo"}); res.IsError {
		t.Fatalf("built-in search_tools = %q", text(res))
	}
	for _, name := range []string{"inject__echo", "otelkey__echo", "otelsrc__echo"} {
		if res := call(t, cs, name, map[string]any{"text": "x"}); !res.IsError {
			t.Errorf("%s served: %q", name, text(res))
		}
	}
	cs.Close()
	logs := stderr.String()
	for name, want := range map[string]string{
		"inject":  "servers.inject.env.NODE_OPTIONS is refused",
		"otelkey": "servers.otelkey.env.OTEL_EXPORTER_OTLP_HEADERS is refused: it is the server's own",
		"otelsrc": "servers.otelsrc.env.HEADERS takes ${OTEL_EXPORTER_OTLP_HEADERS}, the server's own variable",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q", want)
		}
		rec := upstreamRecord(t, u.env, name, "deny")
		if !strings.Contains(fmt.Sprint(rec["reasons"]), strings.SplitN(want, ":", 2)[0]) {
			t.Errorf("deny record of %s: reasons %v", name, rec["reasons"])
		}
	}
	for _, r := range u.records(t) {
		if r["kind"] == "upstream" && r["result"] == "allow" && r["input"].(map[string]any)["server"] != "demo" {
			t.Errorf("a refused server started: %v", r)
		}
	}
	audit, _ := os.ReadFile(u.audit)
	if strings.Contains(string(audit), "otel-secret-5c1e") || strings.Contains(logs, "otel-secret-5c1e") {
		t.Error("the server's telemetry headers reached the audit log or the server's log")
	}
	t.Run("policy-check-warns", func(t *testing.T) {
		out, err := exec.Command(binPath, "policy", "check", "--policy", u.policy).CombinedOutput()
		want := "warning: upstream server inject will not start: servers.inject.env.NODE_OPTIONS is refused"
		if code := exitCode(err); code != 0 || !strings.Contains(string(out), want) || strings.Contains(string(out), "upstream server demo will not start") {
			t.Errorf("policy check: exit %d, want %q:\n%s", code, want, out)
		}
	})
}

// TestExternalRefusedEnv: a manifest whose env names NODE_OPTIONS or the
// server's own telemetry headers is left out, the log naming the
// manifest and the key; a good plugin beside them serves.
func TestExternalRefusedEnv(t *testing.T) {
	e := newEnv(t, "")
	good := extPlugin(t, e, "good", fxManifest("good", "good", ""))
	inject := extPlugin(t, e, "inject", strings.Replace(fxManifest("inject", "inj", ""), "env: [FX_PASSED]", "env: [FX_PASSED, NODE_OPTIONS]", 1))
	otel := extPlugin(t, e, "otel", strings.Replace(fxManifest("otel", "otel", ""), "env: [FX_PASSED]", "env: [OTEL_EXPORTER_OTLP_HEADERS]", 1))
	e.write(t, "policy.yaml", strings.Replace(mustRead(t, e.policy), "audit:", extPolicy(good, inject, otel)+"audit:", 1))
	e.vars = append(e.vars, "NODE_OPTIONS=--require /tmp/evil.js", "OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer otel-secret-5c1e", "FX_PASSED=passed")
	cs, logs := e.connectLog(t)
	if res := call(t, cs, "good_echo", map[string]any{"text": "ok"}); res.IsError || !strings.Contains(text(res), "text=ok env=passed|") {
		t.Fatalf("good_echo = %v %q", res.IsError, text(res))
	}
	for _, tool := range []string{"inj_echo", "otel_echo"} {
		wantError(t, call(t, cs, tool, map[string]any{"text": "x"}), "not registered")
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range []struct{ dir, want string }{
		{inject, "env[1] NODE_OPTIONS is refused: it changes how a program loads code"},
		{otel, "env[0] OTEL_EXPORTER_OTLP_HEADERS is refused: it is the server's own"},
	} {
		for !strings.Contains(logs.String(), c.want) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(logs.String(), filepath.Join(c.dir, "manifest.yaml")) || !strings.Contains(logs.String(), c.want) {
			t.Errorf("the log does not name %s with %q", filepath.Join(c.dir, "manifest.yaml"), c.want)
		}
	}
	cs.Close()
	if strings.Contains(logs.String(), "otel-secret-5c1e") {
		t.Error("the telemetry headers reached the server's log")
	}
}

// upstreamRecord is the last upstream record of server with result.
func upstreamRecord(t *testing.T, e *env, server, result string) map[string]any {
	t.Helper()
	recs := e.records(t)
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if in, ok := r["input"].(map[string]any); ok && r["kind"] == "upstream" && r["result"] == result && in["server"] == server {
			return r
		}
	}
	t.Fatalf("no upstream record of %s with result %s in %d records", server, result, len(recs))
	return nil
}

// TestE2EUpstreamBundleTokenRefused: the variable --bundle-token-env
// names is the server's own credential: a server of the bundle's policy
// may not be given it, as a key or as a ${VAR} source. Both are left out
// with the key named and a deny record; the built-in tools serve, and the
// token appears nowhere.
func TestE2EUpstreamBundleTokenRefused(t *testing.T) {
	e := newEnv(t, "")
	e.vars = append(e.vars, "FLEET_TOKEN="+bundleToken)
	f := newBundleFixture(t, e.dir)
	f.publish(t, "fleet-1", map[string]any{
		"version": "1.0",
		"audit":   map[string]any{"log_file": e.audit},
		"tools":   map[string]any{"timeout": 10},
		"servers": map[string]any{
			"leakkey": map[string]any{"command": "sh", "env": map[string]any{"FLEET_TOKEN": "x"}},
			"leaksrc": map[string]any{"command": "sh", "env": map[string]any{"AUTH": "Bearer ${FLEET_TOKEN}"}},
		},
	}, "package mcp.tools\n")
	args := f.args(filepath.Join(e.dir, "bundle-state"))
	i := slices.Index(args, "--bundle-token-env")
	args[i+1] = "FLEET_TOKEN"

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"))
	cmd.Env = append(cmd.Env, e.vars...)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if res := call(t, cs, "search_tools", map[string]any{"query": "bugs"}); res.IsError {
		t.Fatalf("search_tools: %q", text(res))
	}
	cs.Close()
	for name, want := range map[string]string{
		"leakkey": "servers.leakkey.env.FLEET_TOKEN is refused: it is the server's own",
		"leaksrc": "servers.leaksrc.env.AUTH takes ${FLEET_TOKEN}, the server's own variable",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
		upstreamRecord(t, e, name, "deny")
	}
	audit, _ := os.ReadFile(e.audit)
	if strings.Contains(string(audit), bundleToken) || strings.Contains(logs.String(), bundleToken) {
		t.Error("the bundle token reached the audit log or the server's log")
	}
}
