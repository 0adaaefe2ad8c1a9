package main

import (
	"context"
	"encoding/json"
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

// tools/list offers only what the policy lets this client use: tools
// that tools.denied, tools.allowed or a user rule refuse whatever the
// arguments are left out; the call-time decision still refuses them.
func TestE2EToolsListFollowsPolicy(t *testing.T) {
	e := newEnv(t, `tools:
  timeout: 10
  rate_limits: {default: 600}
  denied: ["web_*", "add_bug"]
rego:
  modules: [client.rego]
`)
	e.write(t, "client.rego", `package mcp.tools

deny contains "e2e clients may not list bugs" if {
	input.tool == "list_bugs"
	input.client.name == "e2e-client"
}
`)
	cs := e.connect(t, "2025-11-25")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	lr, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range lr.Tools {
		names = append(names, tl.Name)
	}
	for _, hidden := range []string{"web_search", "add_bug", "list_bugs"} {
		if slices.Contains(names, hidden) {
			t.Errorf("tools/list offers %s, which the policy refuses this client: %v", hidden, names)
		}
	}
	for _, shown := range []string{"search_tools", "get_bug", "fixture_read"} {
		if !slices.Contains(names, shown) {
			t.Errorf("tools/list lacks %s: %v", shown, names)
		}
	}
	res := call(t, cs, "web_search", map[string]any{"query": "x"})
	if !res.IsError || !strings.Contains(text(res), "tools.denied") {
		t.Fatalf("a hidden tool was run: %v %q", res.IsError, text(res))
	}
	sc, _ := res.StructuredContent.(map[string]any)
	if sc != nil && (sc["error"] != "denied_by_policy" || sc["kind"] != "tool" || sc["target"] != "web_search") {
		t.Errorf("denial structuredContent = %v", sc)
	}
}

// search_tools at detail_level full returns MCP tool objects the model
// can call without another round trip.
func TestE2ESearchToolsFullIsMCPTool(t *testing.T) {
	e := newEnv(t, "")
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "search_tools", map[string]any{"query": "web_search", "detail_level": "full"})
	if res.IsError {
		t.Fatalf("search_tools: %q", text(res))
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var out struct {
		Tools []map[string]json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Tools) == 0 {
		t.Fatalf("structuredContent = %s", raw)
	}
	first := out.Tools[0]
	var tool mcp.Tool
	if err := json.Unmarshal(mustJSON(t, first), &tool); err != nil {
		t.Fatalf("not an MCP tool: %v", err)
	}
	if tool.Name != "web_search" || tool.InputSchema == nil || tool.OutputSchema == nil || tool.Annotations == nil || !tool.Annotations.ReadOnlyHint {
		t.Errorf("tool = %+v", tool)
	}
	if _, snake := first["input_schema"]; snake {
		t.Error("input_schema is still there")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Protocol errors speak of the client's JSON, not of the server's Go
// types or the _meta it injects; a 2025-11-25 session gets no field of a
// later protocol; server/discover without its _meta says what is missing.
func TestE2EProtocolErrorsAndVersionFields(t *testing.T) {
	e := newEnv(t, "")
	r := e.startRaw(t)
	// Out of turn: a call before initialize, a second initialize. Each is
	// an invalid request (-32600), never JSON-RPC's undefined code 0.
	r.send(`{"jsonrpc":"2.0","id":"early","method":"tools/call","params":{"name":"list_categories","arguments":{}}}`)
	if m := r.recv(); fmt.Sprint(m["error"]) == "<nil>" || m["error"].(map[string]any)["code"] != float64(-32600) {
		t.Errorf("a call before initialize = %v", m)
	}
	r.initialize()
	r.send(`{"jsonrpc":"2.0","id":"again","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if m := r.recv(); fmt.Sprint(m["error"]) == "<nil>" || m["error"].(map[string]any)["code"] != float64(-32600) {
		t.Errorf("a second initialize = %v", m)
	}
	r.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`)
	m := r.recv()
	msg := fmt.Sprint(m["error"])
	if !strings.Contains(msg, `"name" must be a string`) || strings.Contains(msg, "io.mcp-secure") || strings.Contains(msg, "Go struct") || strings.Contains(msg, "mcp.CallToolParamsRaw") {
		t.Errorf("invalid params error = %v", m)
	}
	r.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	m = r.recv()
	res, _ := m["result"].(map[string]any)
	if res == nil || res["tools"] == nil {
		t.Fatalf("tools/list = %v", m)
	}
	for _, k := range []string{"ttlMs", "cacheScope"} {
		if _, ok := res[k]; ok {
			t.Errorf("a 2025-11-25 tools/list carries %s", k)
		}
	}
	r.send(`{"jsonrpc":"2.0","id":3,"method":"server/discover","params":{}}`)
	m = r.recv()
	if msg := fmt.Sprint(m["error"]); !strings.Contains(msg, "io.modelcontextprotocol/protocolVersion") || !strings.Contains(msg, "clientCapabilities") {
		t.Errorf("server/discover without _meta = %v", m)
	}
}

// The production build (make build: no build tags) has none of the e2e
// fixture tools, which open doors for tests.
func TestProductionBuildHasNoFixtureTools(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mcp-secure")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e := newEnv(t, "")
	cmd := exec.Command(bin, "serve", "--policy", e.policy)
	cmd.Env = append(os.Environ(), "HOME="+e.dir)
	cmd.Stderr = &testWriter{t: t}
	client := mcp.NewClient(&mcp.Implementation{Name: "prod-check", Version: "0"}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	lr, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Tools) == 0 {
		t.Fatal("the production build lists no tools")
	}
	for _, tl := range lr.Tools {
		if strings.HasPrefix(tl.Name, "fixture_") {
			t.Errorf("the production build offers %s", tl.Name)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fixture_run", Arguments: map[string]any{"argv": []string{"id"}}})
	if err != nil || !res.IsError || !strings.Contains(text(res), "not registered") {
		t.Errorf("fixture_run in the production build: %v %+v", err, res)
	}
}
