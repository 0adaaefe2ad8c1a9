package main

import (
	"os"
	"strings"
	"testing"
)

// TestE2EPolicyEvalAndReplayAgreeWithServer: the real server denies a
// call under a user rule and audits it; policy eval decides the same
// call the same way, with the same reason; policy replay of the server's
// audit log under the policy without the rule reports the change.
func TestE2EPolicyEvalAndReplayAgreeWithServer(t *testing.T) {
	e := newEnv(t, "rego:\n  modules: [moon.rego]\n")
	e.write(t, "moon.rego", `package mcp.tools

deny contains sprintf("client %s may not search for the moon", [input.client.name]) if {
	input.tool == "search_tools"
	contains(input.arguments.query, "moon")
}
`)
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "search_tools", map[string]any{"query": "moon landing"})
	const reason = "client e2e-client may not search for the moon"
	if !res.IsError || !strings.Contains(text(res), reason) {
		t.Fatalf("server did not deny: %s", text(res))
	}
	if res := call(t, cs, "search_tools", map[string]any{"query": "bugs"}); res.IsError {
		t.Fatalf("server denied an ordinary search: %s", text(res))
	}
	rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "search_tools", "result": "deny"})
	if rs, _ := rec["reasons"].([]any); len(rs) != 1 || rs[0] != reason {
		t.Fatalf("audit record reasons = %v", rec["reasons"])
	}
	cs.Close()

	code, out, errOut := runBinary(t, e, "policy", "eval", "--policy", e.policy,
		"--tool", "search_tools", "--args", `{"query":"moon landing"}`, "--client", "e2e-client", "--explain")
	if code != 1 || !strings.Contains(out, "reason: "+reason) || !strings.Contains(out, "moon.rego:3 [user]") {
		t.Errorf("policy eval: exit %d\n%s%s", code, out, errOut)
	}

	// Without the rule, yesterday's deny would be an allow.
	plain := e.write(t, "plain.yaml", strings.Replace(mustRead(t, e.policy), "rego:\n  modules: [moon.rego]\n", "", 1))
	code, out, errOut = runBinary(t, e, "policy", "replay", e.audit, "--policy", plain)
	if code != 1 || !strings.Contains(out, "deny -> allow 1") || !strings.Contains(out, "tool_call search_tools: deny -> allow") {
		t.Errorf("policy replay: exit %d\n%s%s", code, out, errOut)
	}
	// Under the policy the server ran, nothing changes.
	code, out, errOut = runBinary(t, e, "policy", "replay", e.audit, "--policy", e.policy)
	if code != 0 || !strings.Contains(out, "would change: 0") {
		t.Errorf("policy replay, same policy: exit %d\n%s%s", code, out, errOut)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
