package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// waitRecords polls the audit log until match holds for want records,
// for at most d, and returns those matching.
func (e *env) waitRecords(t *testing.T, want int, d time.Duration, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var got []map[string]any
		for _, r := range e.records(t) {
			if match(r) {
				got = append(got, r)
			}
		}
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d matching audit records within %v, want %d", len(got), d, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bundleRefusal matches the policy_reload record of a refused bundle.
func bundleRefusal(r map[string]any) bool {
	p, _ := r["policy"].(map[string]any)
	return r["kind"] == "policy_reload" && r["result"] == "deny" && p["trigger"] == "bundle download"
}

// stillDenied calls list_categories, which the good bundle's rule
// denies, and checks the decision's record names revision rev.
func stillDenied(t *testing.T, e *env, cs *mcp.ClientSession, rev string) {
	t.Helper()
	res := call(t, cs, "list_categories", map[string]any{})
	if !res.IsError || !strings.Contains(text(res), "the fleet policy turns list_categories off") {
		t.Fatalf("the good bundle's rule no longer decides: isError=%v %q", res.IsError, text(res))
	}
	rec := e.findRecord(t, map[string]any{"tool": "list_categories", "result": "deny"})
	if l, _ := rec["labels"].(map[string]any); l["bundle_revision"] != rev {
		t.Errorf("decision labels %v, want bundle_revision %s", l, rev)
	}
}

// TestE2EBundleRefused serves a good signed bundle, then a tampered one
// (a module changed after signing), then a validly signed one whose
// module widens a decision: both are refused, each with a policy_reload
// record (result deny, the reason, the refused revision when it could be
// read), and calls keep being decided by the good bundle. A refusal that
// repeats on every poll is audited once.
func TestE2EBundleRefused(t *testing.T) {
	e := newEnv(t, "")
	e.vars = append(e.vars, "MCP_SECURE_BUNDLE_TOKEN="+bundleToken)
	f := newBundleFixture(t, e.dir)
	pol := map[string]any{
		"version": "1.0",
		"audit":   map[string]any{"log_file": e.audit},
		"tools":   map[string]any{"timeout": 10, "rate_limits": map[string]any{"default": 600}},
	}
	const rule = "package mcp.tools\n\ndeny contains \"the fleet policy turns list_categories off\" if input.tool == \"list_categories\"\n"
	const good = "fleet-good-1"
	f.publish(t, good, pol, rule)
	cs := connectArgs(t, e, f.args(filepath.Join(e.dir, "bundle-state")))
	stillDenied(t, e, cs, good)

	// Tampered: the deny rule taken out after signing.
	f.publishWith(t, "fleet-tampered-2", pol, rule, func(b *opabundle.Bundle) {
		b.Modules[0].Raw = []byte("package mcp.tools\n")
	})
	recs := e.waitRecords(t, 1, 20*time.Second, bundleRefusal)
	r := recs[0]
	if msg, _ := r["error"].(string); !strings.Contains(msg, "digest mismatch") || !strings.Contains(msg, good) {
		t.Errorf("refusal error %q, want the digest mismatch and the revision kept", msg)
	}
	if l, _ := r["labels"].(map[string]any); l["bundle_revision"] != good {
		t.Errorf("refusal labels %v, want the revision in force", l)
	}
	stillDenied(t, e, cs, good)
	// OPA's downloader asks again for a bundle that failed verification;
	// the repeated refusal is not audited again.
	served := f.ok.Load()
	for deadline := time.Now().Add(15 * time.Second); f.ok.Load() < served+2; {
		if time.Now().After(deadline) {
			t.Fatalf("the tampered bundle was not asked for again (%d served)", f.ok.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(e.waitRecords(t, 1, 0, bundleRefusal)); n != 1 {
		t.Errorf("%d refusal records after repeated downloads, want 1", n)
	}

	// Validly signed, but its module tries to widen: refused by the
	// same checks as a policy file, with its revision in the record.
	f.publish(t, "fleet-wide-3", pol, "package mcp.tools\n\nallow := true\n")
	recs = e.waitRecords(t, 2, 20*time.Second, bundleRefusal)
	r = recs[len(recs)-1]
	if p, _ := r["policy"].(map[string]any); p["revision"] != "fleet-wide-3" {
		t.Errorf("refusal policy %v, want revision fleet-wide-3", p)
	}
	if msg, _ := r["error"].(string); !strings.Contains(msg, "rules/fleet.rego:3: rule allow") {
		t.Errorf("refusal error %q, want the module's widening rule named", msg)
	}
	stillDenied(t, e, cs, good)
	if len(e.waitRecords(t, 0, 0, func(r map[string]any) bool { return r["kind"] == "policy_reload" && r["result"] == "allow" })) != 0 {
		t.Error("a refused bundle was applied")
	}
}

// TestE2EBundleRollback runs the server with --bundle-revision-order
// natural: after fleet-10, the service serves the older, validly signed
// fleet-9 (whose rule set is weaker). It is refused and audited, calls
// stay decided by fleet-10; a restart while the service still serves
// fleet-9 starts on the persisted fleet-10 and audits the refusal.
func TestE2EBundleRollback(t *testing.T) {
	e := newEnv(t, "")
	e.vars = append(e.vars, "MCP_SECURE_BUNDLE_TOKEN="+bundleToken)
	f := newBundleFixture(t, e.dir)
	pol := map[string]any{
		"version": "1.0",
		"audit":   map[string]any{"log_file": e.audit},
		"tools":   map[string]any{"timeout": 10, "rate_limits": map[string]any{"default": 600}},
	}
	const rule = "package mcp.tools\n\ndeny contains \"the fleet policy turns list_categories off\" if input.tool == \"list_categories\"\n"
	const weaker = "package mcp.tools\n\ndeny contains \"nothing\" if input.tool == \"no_such_tool\"\n"
	state := filepath.Join(e.dir, "bundle-state")
	args := append(f.args(state), "--bundle-revision-order", "natural")

	f.publish(t, "fleet-10", pol, rule)
	cs := connectArgs(t, e, args)
	stillDenied(t, e, cs, "fleet-10")
	f.publish(t, "fleet-9", pol, weaker)
	r := e.waitRecords(t, 1, 20*time.Second, bundleRefusal)[0]
	if p, _ := r["policy"].(map[string]any); p["revision"] != "fleet-9" {
		t.Errorf("refusal policy %v, want revision fleet-9", p)
	}
	if msg, _ := r["error"].(string); !strings.Contains(msg, "bundle rollback") || !strings.Contains(msg, `"fleet-10"`) {
		t.Errorf("refusal error %q, want a rollback below fleet-10", msg)
	}
	stillDenied(t, e, cs, "fleet-10")
	cs.Close()

	// Restart: the service still offers fleet-9.
	cs = connectArgs(t, e, args)
	stillDenied(t, e, cs, "fleet-10")
	e.waitRecords(t, 2, 20*time.Second, bundleRefusal)
	cs.Close()

	// Without the order, the same service would roll the server back:
	// what the flag defends against.
	cs = connectArgs(t, e, f.args(state))
	res := call(t, cs, "list_categories", map[string]any{})
	if res.IsError {
		t.Fatalf("without --bundle-revision-order, fleet-9 was expected to be taken: %s", text(res))
	}
}

// TestE2EBundleStateProtected: the directory that keeps a bundle
// service's last good bundle and its rollback floor is one of the
// server's own, even below an allowed path: a tool that writes the floor
// (turning rollback protection off, or bricking the next start) is
// denied, and the denial is audited.
func TestE2EBundleStateProtected(t *testing.T) {
	e := newEnv(t, "")
	e.vars = append(e.vars, "MCP_SECURE_BUNDLE_TOKEN="+bundleToken)
	f := newBundleFixture(t, e.dir)
	pol := map[string]any{
		"version":    "1.0",
		"audit":      map[string]any{"log_file": e.audit},
		"filesystem": map[string]any{"allowed_paths": []string{e.workspace + "/**"}},
		"tools":      map[string]any{"timeout": 10, "rate_limits": map[string]any{"default": 600}},
	}
	f.publish(t, "fleet-1", pol, "package mcp.tools\n")
	state := filepath.Join(e.workspace, "bundle-state")
	cs := connectArgs(t, e, append(f.args(state), "--bundle-revision-order", "natural"))
	floor := filepath.Join(state, "bundle.floor.json")
	before, err := os.ReadFile(floor)
	if err != nil {
		t.Fatalf("the floor was not kept: %v", err)
	}
	res := call(t, cs, "fixture_write", map[string]any{"path": floor, "text": `{"revision":""}`})
	if !res.IsError || !strings.Contains(text(res), "bundle state directory") {
		t.Fatalf("writing the rollback floor was not denied as the server's own: isError=%v %q", res.IsError, text(res))
	}
	if after, _ := os.ReadFile(floor); !bytes.Equal(after, before) {
		t.Fatalf("the floor changed: %s", after)
	}
	if res := call(t, cs, "fixture_write", map[string]any{"path": filepath.Join(e.workspace, "note"), "text": "ok"}); res.IsError {
		t.Fatalf("a write elsewhere in the workspace was denied: %s", text(res))
	}
	cs.Close()
	rec := e.findRecord(t, map[string]any{"kind": "filesystem", "result": "deny"})
	if in, _ := rec["input"].(map[string]any); in["path"] != floor {
		t.Errorf("filesystem deny record input %v, want path %s", in, floor)
	}
}
