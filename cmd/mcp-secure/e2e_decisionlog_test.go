package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// dlService is a loopback OPA decision-log service: gzip batches at
// /logs while up, 503 while down.
type dlService struct {
	down     atomic.Bool
	attempts atomic.Int64
	mu       sync.Mutex
	events   []map[string]any
	raw      bytes.Buffer
	problems []string
	url      string
}

func startDLService(t *testing.T) *dlService {
	t.Helper()
	s := &dlService{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.attempts.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path != "/logs" || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Authorization") != "Bearer dl-token-e2e" {
			s.problems = append(s.problems, fmt.Sprintf("%s encoding %q auth %q", r.URL.Path, r.Header.Get("Content-Encoding"), r.Header.Get("Authorization")))
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.problems = append(s.problems, "not gzip")
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(zr, 16<<20))
		s.raw.Write(body)
		var batch []map[string]any
		if err := json.Unmarshal(body, &batch); err != nil {
			s.problems = append(s.problems, "not a JSON array")
		}
		s.events = append(s.events, batch...)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *dlService) snapshot() ([]map[string]any, string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...), s.raw.String(), append([]string(nil), s.problems...)
}

func decisionLogPolicy(url, reporting string) string {
	return fmt.Sprintf(`tools:
  timeout: 10
  denied: [fixture_write]
  rate_limits:
    default: 600
telemetry:
  decision_logs:
    service:
      url: "%s"
      credentials:
        bearer: {token: "${DL_TOKEN}"}
    reporting: {%s}
`, url, reporting)
}

// connectStderr is connect with the server's stderr kept in w.
func (e *env) connectStderr(t *testing.T, w io.Writer) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := e.command()
	cmd.Stderr = w
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-client", Version: "1.2.3"}, nil).
		Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestE2EDecisionLogUpload: the binary uploads every audit record as a
// decision event, gzip-compressed with the bearer token from the
// environment, keeps them while the service is down, and never uploads a
// secret from the arguments.
func TestE2EDecisionLogUpload(t *testing.T) {
	s := startDLService(t)
	s.down.Store(true)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	t.Cleanup(upstream.Close)
	blocked := unusedPort(t)
	e := newEnvNet(t, loopbackNetwork(blocked), decisionLogPolicy(s.url, "min_delay_seconds: 1, max_delay_seconds: 1"))
	e.vars = []string{"DL_TOKEN=dl-token-e2e"}
	cs := e.connect(t, "")
	if res := call(t, cs, "fixture_fetch", map[string]any{"url": upstream.URL + "/?token=" + telemetrySecret}); res.IsError {
		t.Fatalf("allowed fetch: %s", text(res))
	}
	if res := call(t, cs, "fixture_write", map[string]any{"path": e.workspace + "/f", "text": "api_key=" + telemetrySecret}); !res.IsError {
		t.Fatal("fixture_write was not denied")
	}
	if res := call(t, cs, "fixture_fetch", map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d/?token=%s", blocked, telemetrySecret)}); !res.IsError {
		t.Fatal("blocked port was not denied")
	}
	waitUntil(t, 10*time.Second, "an upload to the service while it is down", func() bool { return s.attempts.Load() >= 1 })
	s.down.Store(false)
	cs.Close() // the server flushes what it holds at shutdown

	events, raw, problems := s.snapshot()
	if len(problems) > 0 {
		t.Errorf("malformed uploads: %v", problems)
	}
	if strings.Contains(raw, telemetrySecret) {
		t.Error("a secret from the arguments was uploaded")
	}
	got := map[string]map[string]any{}
	for _, ev := range events {
		custom, _ := ev["custom"].(map[string]any)
		got[fmt.Sprint(ev["decision_id"], "/", custom["kind"])] = ev
	}
	recs := e.records(t)
	checked := 0
	for _, r := range recs {
		if r["kind"] == "audit_genesis" {
			continue
		}
		checked++
		ev := got[fmt.Sprint(r["decision_id"], "/", r["kind"])]
		if ev == nil {
			t.Errorf("record %v/%v was not uploaded", r["kind"], r["decision_id"])
			continue
		}
		if ev["path"] != r["path"] && r["path"] != nil {
			t.Errorf("event path %v, record %v", ev["path"], r["path"])
		}
		res, _ := ev["result"].(map[string]any)
		if res["allow"] != (r["result"] == "allow") {
			t.Errorf("event %v result %v, record result %v", r["decision_id"], ev["result"], r["result"])
		}
	}
	if checked < 5 { // tool_call x3, tool_result x2, network x2 at least
		t.Errorf("only %d records to compare", checked)
	}
	if !strings.Contains(raw, "fixture_write") || !strings.Contains(raw, "tools.denied") {
		t.Error("the denied call's event is missing its reasons")
	}
}

// TestE2EDecisionLogDropsWhenFull: with the service down and a small
// buffer, the oldest events are dropped, counted and reported, and calls
// go on unhindered.
func TestE2EDecisionLogDropsWhenFull(t *testing.T) {
	s := startDLService(t)
	s.down.Store(true)
	c, endpoint := startHTTPCollector(t)
	e := newEnv(t, decisionLogPolicy(s.url, "min_delay_seconds: 1, max_delay_seconds: 1, buffer_size_limit_bytes: 2048, upload_size_limit_bytes: 1024"))
	e.vars = []string{"DL_TOKEN=dl-token-e2e", "OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_METRIC_EXPORT_INTERVAL=100"}
	var stderr bytes.Buffer
	cs := e.connectStderr(t, &lockedWriter{w: &stderr})
	for i := range 60 {
		if res := call(t, cs, "list_categories", map[string]any{}); res.IsError {
			t.Fatalf("call %d: %s", i, text(res))
		}
	}
	cs.Close()
	if !strings.Contains(stderr.String(), "decision events dropped before upload") {
		t.Errorf("no report of dropped events on stderr:\n%s", stderr.String())
	}
	waitUntil(t, 10*time.Second, "the drop counter", func() bool {
		_, metrics, _ := c.snapshot()
		for _, m := range metrics {
			if m.Name == "mcp_secure.decision_logs.dropped" {
				for _, dp := range m.GetSum().GetDataPoints() {
					if dp.GetAsInt() > 0 {
						return true
					}
				}
			}
		}
		return false
	})
	if n := len(e.records(t)); n < 120 {
		t.Errorf("the local log has %d records, want every call's", n)
	}
}
