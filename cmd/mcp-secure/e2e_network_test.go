package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// searchFixture serves a DuckDuckGo Lite results page on loopback, and a
// redirect from /redirect to the same page on 127.0.0.2, an address the
// test policies do not allow.
func searchFixture(t *testing.T) (srv *httptest.Server, port int) {
	t.Helper()
	page, err := os.ReadFile("../../plugins/websearch/testdata/results.html")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/lite/", func(w http.ResponseWriter, _ *http.Request) { w.Write(page) })
	srv = httptest.NewServer(mux)
	port = srv.Listener.Addr().(*net.TCPAddr).Port
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://127.0.0.2:%d/lite/", port), http.StatusFound)
	})
	t.Cleanup(srv.Close)
	return srv, port
}

// loopbackNetwork allows 127.0.0.1 only, and blocks blockedPort.
func loopbackNetwork(blockedPort int) string {
	return fmt.Sprintf(`network:
  allowed_ranges: ["127.0.0.1/32"]
  blocked_ports: [22, %d]
  allow_dns: false
`, blockedPort)
}

// unusedPort returns a loopback port nothing listens on.
func unusedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestE2EWebSearchThroughGuard(t *testing.T) {
	srv, _ := searchFixture(t)
	blocked := unusedPort(t)

	t.Run("allow/fixture-results", func(t *testing.T) {
		e := newEnvNet(t, loopbackNetwork(blocked), "")
		e.vars = []string{"MCP_SECURE_WEBSEARCH_URL=" + srv.URL + "/lite/"}
		cs := e.connect(t, "2025-11-25")
		res := call(t, cs, "web_search", map[string]any{"query": "golang generics", "max_results": 2})
		if res.IsError || !strings.Contains(text(res), "https://go.dev/doc/tutorial/generics") {
			t.Fatalf("web_search: isError=%v %q", res.IsError, text(res))
		}
		sc, _ := res.StructuredContent.(map[string]any)
		if sc["count"] != float64(2) {
			t.Errorf("structuredContent = %v", sc)
		}
		callRec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "web_search", "result": "allow"})
		netRec := e.findRecord(t, map[string]any{"kind": "network", "tool": "web_search", "result": "allow"})
		if netRec["parent_decision_id"] != callRec["decision_id"] || netRec["path"] != "mcp/network/decision" {
			t.Errorf("network record %v is not linked to call %v", netRec, callRec["decision_id"])
		}
	})

	t.Run("deny/redirect-to-disallowed-address", func(t *testing.T) {
		e := newEnvNet(t, loopbackNetwork(blocked), "")
		e.vars = []string{"MCP_SECURE_WEBSEARCH_URL=" + srv.URL + "/redirect"}
		cs := e.connect(t, "")
		res := call(t, cs, "web_search", map[string]any{"query": "x"})
		msg := text(res)
		if !res.IsError || !strings.Contains(msg, "127.0.0.2") || !strings.Contains(msg, "network.allowed_ranges") {
			t.Fatalf("redirect not denied: isError=%v %q", res.IsError, msg)
		}
		rec := e.findRecord(t, map[string]any{"kind": "network", "result": "deny"})
		in, _ := rec["input"].(map[string]any)
		if in["ip"] != "127.0.0.2" || rec["tool"] != "web_search" {
			t.Errorf("deny record = %v", rec)
		}
		// The first hop, to the allowed address, was allowed and audited.
		e.findRecord(t, map[string]any{"kind": "network", "result": "allow"})
	})

	t.Run("deny/blocked-port", func(t *testing.T) {
		e := newEnvNet(t, loopbackNetwork(blocked), "")
		e.vars = []string{fmt.Sprintf("MCP_SECURE_WEBSEARCH_URL=http://127.0.0.1:%d/lite/", blocked)}
		cs := e.connect(t, "2025-11-25")
		res := call(t, cs, "web_search", map[string]any{"query": "x"})
		want := fmt.Sprintf("port %d is in network.blocked_ports", blocked)
		if !res.IsError || !strings.Contains(text(res), want) {
			t.Fatalf("blocked port not denied: isError=%v %q", res.IsError, text(res))
		}
		// web_search declares an output schema: the denial's details stay
		// in the text, so structuredContent never breaks that schema.
		if res.StructuredContent != nil {
			t.Errorf("structuredContent on an error of a tool with an output schema: %v", res.StructuredContent)
		}
		rec := e.findRecord(t, map[string]any{"kind": "network", "result": "deny"})
		if r, _ := rec["reasons"].([]any); len(r) != 1 || r[0] != want {
			t.Errorf("reasons = %v", rec["reasons"])
		}
	})

	t.Run("deny/default-policy-keeps-loopback-out", func(t *testing.T) {
		// The usual policy allows only lite.duckduckgo.com:443; an override
		// pointing at loopback is refused at dial time.
		e := newEnv(t, "")
		e.vars = []string{"MCP_SECURE_WEBSEARCH_URL=" + srv.URL + "/lite/"}
		cs := e.connect(t, "2025-11-25")
		res := call(t, cs, "web_search", map[string]any{"query": "x"})
		if !res.IsError || !strings.Contains(text(res), "not in network.allowed_ranges") {
			t.Fatalf("loopback reached: isError=%v %q", res.IsError, text(res))
		}
	})
}
