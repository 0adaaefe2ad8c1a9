package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestE2EHandshake(t *testing.T) {
	e := newEnv(t, "")
	for _, tc := range []struct {
		name, ask, want string
	}{
		{"default-client/stateless", "", "2026-07-28"},
		{"initialize/2025-11-25", "2025-11-25", "2025-11-25"},
		{"initialize/2025-06-18", "2025-06-18", "2025-06-18"},
		{"initialize/2024-11-05", "2024-11-05", "2024-11-05"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := e.connect(t, tc.ask)
			ir := cs.InitializeResult()
			if ir.ProtocolVersion != tc.want {
				t.Errorf("negotiated %q, want %q", ir.ProtocolVersion, tc.want)
			}
			if ir.ServerInfo == nil || ir.ServerInfo.Name != "mcp-secure" {
				t.Errorf("serverInfo = %+v, want name mcp-secure", ir.ServerInfo)
			}
			if !strings.Contains(ir.Instructions, "search_tools") {
				t.Errorf("instructions do not mention search_tools: %q", ir.Instructions)
			}
			if err := cs.Ping(t.Context(), nil); err != nil && tc.want < "2026-07-28" {
				t.Errorf("ping: %v", err)
			}
			// The client identity reaches the policy and the audit log on
			// both the initialize and the stateless path.
			res := call(t, cs, "list_categories", map[string]any{})
			if res.IsError {
				t.Fatalf("list_categories failed: %s", text(res))
			}
			rec := e.findRecord(t, map[string]any{"tool": "list_categories", "kind": "tool_call", "result": "allow"})
			client, _ := rec["client"].(map[string]any)
			if client["name"] != "e2e-client" || client["version"] != "1.2.3" {
				t.Errorf("audit client = %v, want e2e-client 1.2.3", rec["client"])
			}
		})
	}
}

func TestE2EToolsList(t *testing.T) {
	cs := newEnv(t, "").connect(t, "2025-11-25")
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil {
			t.Errorf("%s has no input schema", tool.Name)
		}
	}
	for _, want := range []string{"search_tools", "list_categories"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
}

func TestE2EDiscovery(t *testing.T) {
	e := newEnv(t, "tools:\n  denied: [list_categories]\n")
	cs := e.connect(t, "")

	res := call(t, cs, "search_tools", map[string]any{"query": "search tools", "detail_level": "full"})
	if res.IsError {
		t.Fatalf("search_tools: %s", text(res))
	}
	body, _ := json.Marshal(res.StructuredContent)
	if !strings.Contains(string(body), `"search_tools"`) {
		t.Errorf("search_tools did not find itself: %s", body)
	}
	// A tool the policy denies is hidden from discovery...
	if strings.Contains(string(body), `"list_categories"`) {
		t.Errorf("search_tools shows a denied tool: %s", body)
	}
	// ...and its call is denied with the policy's reason and audited.
	res = call(t, cs, "list_categories", map[string]any{})
	if !res.IsError || !strings.Contains(text(res), "tools.denied") {
		t.Errorf("denied tool call: isError=%v text=%q", res.IsError, text(res))
	}
	rec := e.findRecord(t, map[string]any{"tool": "list_categories", "result": "deny"})
	if rec["kind"] != "tool_call" || rec["path"] != "mcp/tools/decision" {
		t.Errorf("deny record = %v", rec)
	}
	// include_unavailable shows it, flagged.
	res = call(t, cs, "search_tools", map[string]any{"query": "categories", "include_unavailable": true})
	body, _ = json.Marshal(res.StructuredContent)
	if !strings.Contains(string(body), `"list_categories"`) {
		t.Errorf("include_unavailable did not list the denied tool: %s", body)
	}
}

func TestE2EListCategories(t *testing.T) {
	cs := newEnv(t, "").connect(t, "2025-11-25")
	res := call(t, cs, "list_categories", map[string]any{})
	if res.IsError {
		t.Fatalf("list_categories: %s", text(res))
	}
	body, _ := json.Marshal(res.StructuredContent)
	for _, want := range []string{`"category":"discovery"`, `"tool_count":2`, `"version"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("list_categories result lacks %s: %s", want, body)
		}
	}
}

func TestE2ESchemaRejection(t *testing.T) {
	e := newEnv(t, "")
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "search_tools", map[string]any{"query": "x", "detail_level": "everything"})
	if !res.IsError {
		t.Fatalf("invalid enum accepted: %s", text(res))
	}
	msg := text(res)
	if !strings.Contains(msg, "/detail_level") || !strings.Contains(msg, "enum") {
		t.Errorf("error should name the pointer and keyword: %q", msg)
	}
	rec := e.findRecord(t, map[string]any{"kind": "validation", "tool": "search_tools"})
	if rec["result"] != "deny" {
		t.Errorf("validation record = %v", rec)
	}
}

func TestE2ERateLimit(t *testing.T) {
	e := newEnv(t, "tools:\n  rate_limits:\n    default: 600\n    list_categories: 2\n")
	cs := e.connect(t, "2025-11-25")
	for i := range 2 {
		if res := call(t, cs, "list_categories", map[string]any{}); res.IsError {
			t.Fatalf("call %d within the limit failed: %s", i, text(res))
		}
	}
	res := call(t, cs, "list_categories", map[string]any{})
	if !res.IsError || !strings.Contains(text(res), "rate limit") {
		t.Fatalf("third call: isError=%v %q", res.IsError, text(res))
	}
	e.findRecord(t, map[string]any{"kind": "rate_limit", "tool": "list_categories", "result": "deny"})
	// Other tools keep their own budget.
	if res := call(t, cs, "search_tools", map[string]any{}); res.IsError {
		t.Errorf("another tool was limited too: %s", text(res))
	}
}

func TestE2EUserRegoRule(t *testing.T) {
	e := newEnv(t, "rego:\n  modules: [rules/no_secret_search.rego]\n")
	if err := os.MkdirAll(e.dir+"/rules", 0o755); err != nil {
		t.Fatal(err)
	}
	e.write(t, "rules/no_secret_search.rego", `package mcp.tools

deny contains "searching for credentials is not allowed" if {
	input.tool == "search_tools"
	contains(lower(input.arguments.query), "password")
}
`)
	cs := e.connect(t, "")
	res := call(t, cs, "search_tools", map[string]any{"query": "admin password"})
	if !res.IsError || !strings.Contains(text(res), "searching for credentials is not allowed") {
		t.Fatalf("user rule did not deny: isError=%v %q", res.IsError, text(res))
	}
	rec := e.findRecord(t, map[string]any{"tool": "search_tools", "result": "deny"})
	if r, _ := rec["reasons"].([]any); len(r) == 0 || r[0] != "searching for credentials is not allowed" {
		t.Errorf("reasons = %v", rec["reasons"])
	}
	if res := call(t, cs, "search_tools", map[string]any{"query": "bugs"}); res.IsError {
		t.Errorf("the rule denied an innocent call: %s", text(res))
	}
}

func TestE2EUnknownTool(t *testing.T) {
	e := newEnv(t, "")
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "rm_rf", map[string]any{})
	if !res.IsError || !strings.Contains(text(res), "not registered") {
		t.Fatalf("unknown tool: isError=%v %q", res.IsError, text(res))
	}
	e.findRecord(t, map[string]any{"tool": "rm_rf", "result": "deny"})
}

// TestE2EHostileInput sends what no well-behaved client sends; after each
// message the server must still answer a ping.
func TestE2EHostileInput(t *testing.T) {
	e := newEnv(t, "")
	s := e.startRaw(t)
	s.initialize()
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	huge := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search_tools","arguments":{"query":"` + strings.Repeat("a", 2<<20) + `"}}}`
	cases := []struct {
		name, line string
		code       float64
		id         any
	}{
		{"malformed-json", `{"jsonrpc":"2.0","id":1,"method":`, -32700, nil},
		{"batch", `[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"ping"}]`, -32600, nil},
		{"two-mib-line", huge, -32600, nil},
		{"deep-nesting", deep, -32600, nil},
		{"deep-nesting-in-params", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}}}`, -32600, float64(4)},
		{"non-string-tool-name", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":42,"arguments":{}}}`, -32602, float64(5)},
		{"invalid-utf8", "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"search_tools\",\"arguments\":{\"query\":\"\xff\xfe\"}}}", -32700, nil},
		{"not-jsonrpc", `{"id":7,"method":"ping"}`, -32600, float64(7)},
		{"params-not-object", `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":[1,2]}`, -32602, float64(8)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			s.send(tc.line)
			m := s.recv()
			errObj, _ := m["error"].(map[string]any)
			if errObj == nil {
				t.Fatalf("want a JSON-RPC error, got %v", m)
			}
			if errObj["code"] != tc.code {
				t.Errorf("code = %v, want %v (%v)", errObj["code"], tc.code, errObj["message"])
			}
			if m["id"] != tc.id {
				t.Errorf("id = %v, want %v", m["id"], tc.id)
			}
			pingID := 1000 + i
			s.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, pingID))
			if p := s.recv(); p["id"] != float64(pingID) || p["result"] == nil {
				t.Fatalf("server did not answer the next ping: %v", p)
			}
		})
	}
}

func TestE2EExitAndAudit(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(s *rawServer)
	}{
		{"eof", func(s *rawServer) { s.stdin.Close() }},
		{"sigterm", func(s *rawServer) { s.cmd.Process.Signal(syscall.SIGTERM) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			s := e.startRaw(t)
			s.initialize()
			s.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_categories","arguments":{"token":"ghp_abcdefghijklmnopqrstuvwxyz0123456789"}}}`)
			if m := s.recv(); m["result"] == nil {
				t.Fatalf("call failed: %v", m)
			}
			tc.stop(s)
			done := make(chan error, 1)
			go func() { done <- s.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v (want status 0)", err)
				}
			case <-time.After(15 * time.Second):
				s.cmd.Process.Kill()
				t.Fatal("server did not exit")
			}
			if s.cmd.ProcessState.ExitCode() != 0 {
				t.Errorf("exit code %d", s.cmd.ProcessState.ExitCode())
			}
			e.findRecord(t, map[string]any{"tool": "list_categories", "request_id": "1"})
		})
	}
}

func TestE2EAuditFile(t *testing.T) {
	e := newEnv(t, "")
	cs := e.connect(t, "2025-11-25")
	secrets := []string{
		"hunter2-password-value",
		"Bearer abcdefghijklmnopqrstuvwxyz",
		"AKIAIOSFODNN7EXAMPLE",
		"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
	}
	// The schema rejects unknown keys, so the call is denied at
	// validation; the validation record carries the redacted arguments.
	call(t, cs, "search_tools", map[string]any{
		"query":    "find " + secrets[2],
		"password": secrets[0],
		"nested":   []any{map[string]any{"auth": secrets[1]}, secrets[3]},
	})
	cs.Close()
	st, err := os.Stat(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("audit file mode %o, want 600", mode)
	}
	dst, _ := os.Stat(e.dir + "/logs")
	if mode := dst.Mode().Perm(); mode != 0o700 {
		t.Errorf("audit dir mode %o, want 700", mode)
	}
	data, _ := os.ReadFile(e.audit)
	for _, s := range secrets {
		if strings.Contains(string(data), s) {
			t.Errorf("audit log contains secret %q", s)
		}
	}
	if !strings.Contains(string(data), "[REDACTED:") {
		t.Errorf("audit log has no redaction marker")
	}
	rec := e.findRecord(t, map[string]any{"kind": "validation", "tool": "search_tools"})
	for _, k := range []string{"timestamp", "decision_id", "kind", "result", "input", "duration_ns"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("audit record lacks %q: %v", k, rec)
		}
	}
	if ts, _ := rec["timestamp"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("timestamp %q is not UTC RFC 3339", ts)
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
}

func TestE2EConcurrentCalls(t *testing.T) {
	cs := newEnv(t, "").connect(t, "2025-11-25")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 20)
	for range 20 {
		go func() {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_tools", Arguments: map[string]any{"query": "bug"}})
			switch {
			case err != nil:
			case res.IsError:
				err = fmt.Errorf("search_tools failed: %s", text(res))
			case !strings.Contains(text(res), "add_bug"):
				err = fmt.Errorf("search_tools did not find add_bug: %s", text(res))
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestCLIBadPolicy(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	os.WriteFile(bad, []byte("version: \"1.0\"\nnetwork:\n  allowed_ranges: [\"10.0.0.0/33\"]\n"), 0o644)
	for _, args := range [][]string{
		{"serve", "--policy", bad},
		{"--policy", bad},
		{"policy", "check", "--policy", bad},
		{"serve", "--no-such-flag"},
	} {
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: err=%v, want exit 2; output %s", args, err, out)
		}
		if args[len(args)-1] == bad && !strings.Contains(string(out), "bad.yaml:3") {
			t.Errorf("%v: error does not name file and line: %s", args, out)
		}
	}
}

func TestCLIVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(binPath, args...).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"mcp-secure e2e", "OPA 1.22", "2025-11-25", "2026-07-28"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%v output lacks %q: %s", args, want, out)
			}
		}
	}
}

// TestE2EAuditIncludeWithoutArguments: a policy whose audit.include leaves
// out "arguments" gets records without them.
func TestE2EAuditIncludeWithoutArguments(t *testing.T) {
	e := newEnv(t, "  include: [timestamp, tool_name, result_status, security_events]\n")
	cs := e.connect(t, "2025-11-25")
	if res := call(t, cs, "search_tools", map[string]any{"query": "very-distinctive-query"}); res.IsError {
		t.Fatalf("search_tools: %s", text(res))
	}
	rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "search_tools", "result": "allow"})
	in, _ := rec["input"].(map[string]any)
	if in["tool"] != "search_tools" {
		t.Errorf("input = %v", rec["input"])
	}
	if _, ok := in["arguments"]; ok {
		t.Errorf("arguments recorded although audit.include leaves them out: %v", in)
	}
	for _, k := range []string{"request_id", "duration_ns"} {
		if _, ok := rec[k]; ok {
			t.Errorf("%s recorded although audit.include leaves it out: %v", k, rec)
		}
	}
	if _, ok := rec["timestamp"]; !ok {
		t.Errorf("no timestamp: %v", rec)
	}
}
