package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EBundleRevisionInSpans runs the server on a bundle with traces
// exported to a loopback collector: every decision span carries the
// revision in force, the new one after a reload.
func TestE2EBundleRevisionInSpans(t *testing.T) {
	c, endpoint := startHTTPCollector(t)
	e := newEnv(t, "")
	e.vars = append(e.vars, "MCP_SECURE_BUNDLE_TOKEN="+bundleToken,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+endpoint, "OTEL_BSP_SCHEDULE_DELAY=50")
	f := newBundleFixture(t, e.dir)
	pol := map[string]any{
		"version": "1.0",
		"audit":   map[string]any{"log_file": e.audit},
		"tools":   map[string]any{"timeout": 10, "rate_limits": map[string]any{"default": 600}},
	}
	const rule = "package mcp.tools\n\ndeny contains \"the fleet policy turns list_categories off\" if input.tool == \"list_categories\"\n"
	f.publish(t, "fleet-1", pol, rule)
	cs := connectArgs(t, e, f.args(filepath.Join(e.dir, "bundle-state")))

	calls := func(rev string) {
		stillDenied(t, e, cs, rev)
		call(t, cs, "search_tools", map[string]any{"query": "bugs"})
		call(t, cs, "search_tools", map[string]any{"query": 5}) // invalid: a validation decision
	}
	calls("fleet-1")
	f.publish(t, "fleet-2", pol, rule)
	for deadline := time.Now().Add(20 * time.Second); ; {
		call(t, cs, "list_categories", map[string]any{})
		if e.lastRevision(t) == "fleet-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fleet-2 not in force within 20 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	calls("fleet-2")
	cs.Close()

	byRev := map[string]map[string]int{} // revision -> span name -> count
	waitUntil(t, 10*time.Second, "decision spans of both revisions", func() bool {
		spans, _, _ := c.snapshot()
		byRev = map[string]map[string]int{}
		for _, s := range spans {
			if !strings.HasPrefix(s.Name, "decide ") || attr(s.Attributes, "mcp_secure.decision_id") == "" {
				continue
			}
			rev := attr(s.Attributes, "mcp_secure.bundle.revision")
			if byRev[rev] == nil {
				byRev[rev] = map[string]int{}
			}
			byRev[rev][s.Name]++
		}
		return byRev["fleet-1"]["decide validation"] > 0 && byRev["fleet-2"]["decide validation"] > 0
	})
	if len(byRev[""]) > 0 {
		t.Errorf("decision spans without the bundle revision: %v", byRev[""])
	}
	for _, rev := range []string{"fleet-1", "fleet-2"} {
		if byRev[rev]["decide tool_call"] < 2 {
			t.Errorf("%s: decision spans %v, want the tool_call decisions", rev, byRev[rev])
		}
	}
}

// lastRevision is the bundle revision of the last list_categories
// decision in the audit log.
func (e *env) lastRevision(t *testing.T) string {
	t.Helper()
	rec := e.findRecord(t, map[string]any{"tool": "list_categories", "kind": "tool_call"})
	l, _ := rec["labels"].(map[string]any)
	rev, _ := l["bundle_revision"].(string)
	return rev
}
