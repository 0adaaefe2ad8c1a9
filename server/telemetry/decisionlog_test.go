package telemetry

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logService is a loopback decision-log service: it accepts gzip batches
// at /logs while up, and answers 503 while down.
type logService struct {
	down     atomic.Bool
	attempts atomic.Int64
	mu       sync.Mutex
	events   []map[string]any
	auth     []string
	bad      []string
	url      string
}

func newLogService(t *testing.T) *logService {
	t.Helper()
	s := &logService{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.attempts.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path != "/logs" || r.Method != http.MethodPost || r.Header.Get("Content-Encoding") != "gzip" {
			s.bad = append(s.bad, fmt.Sprintf("%s %s encoding %q", r.Method, r.URL.Path, r.Header.Get("Content-Encoding")))
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.bad = append(s.bad, "not gzip: "+err.Error())
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		var batch []map[string]any
		if err := json.NewDecoder(io.LimitReader(zr, 16<<20)).Decode(&batch); err != nil {
			s.bad = append(s.bad, "not a JSON array: "+err.Error())
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		s.events = append(s.events, batch...)
		s.auth = append(s.auth, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *logService) received() ([]map[string]any, []string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...), append([]string(nil), s.auth...), append([]string(nil), s.bad...)
}

func i64(v int64) *int64 { return &v }

func record(i int) []byte {
	return fmt.Appendf(nil, `{"timestamp":"2026-12-01T10:00:00.000000001Z","decision_id":"d-%d","session_id":"s","request_id":"%d",`+
		`"path":"mcp/network/decision","kind":"network","tool":"fixture_fetch","result":"deny","reasons":["port 22 is blocked"],`+
		`"input":{"host":"","ip":"127.0.0.1","port":22},"duration_ns":1200,"labels":{"service":"mcp-secure"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}`, i, i)
}

func startLogs(t *testing.T, s *logService, cfg DecisionLogConfig) *DecisionLogs {
	t.Helper()
	cfg.URL = s.url
	cfg.BearerToken = "tok-123"
	if cfg.MinDelaySeconds == nil {
		cfg.MinDelaySeconds, cfg.MaxDelaySeconds = i64(1), i64(1)
	}
	d, err := NewDecisionLogs(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDecisionLogsUploadsGzipBatches(t *testing.T) {
	s := newLogService(t)
	d := startLogs(t, s, DecisionLogConfig{Labels: map[string]string{"service": "mcp-secure"}})
	for i := range 5 {
		d.Tee(record(i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	events, auth, bad := s.received()
	if len(bad) > 0 {
		t.Fatalf("malformed uploads: %v", bad)
	}
	if len(events) != 5 {
		t.Fatalf("%d events uploaded, want 5", len(events))
	}
	for _, a := range auth {
		if a != "Bearer tok-123" {
			t.Errorf("Authorization %q", a)
		}
	}
	ev := events[0]
	for k, want := range map[string]any{"decision_id": "d-0", "path": "mcp/network/decision",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"} {
		if ev[k] != want {
			t.Errorf("event %s = %v, want %v", k, ev[k], want)
		}
	}
	res, _ := ev["result"].(map[string]any)
	if res["allow"] != false || fmt.Sprint(res["reasons"]) != "[port 22 is blocked]" {
		t.Errorf("event result %v", ev["result"])
	}
	custom, _ := ev["custom"].(map[string]any)
	if custom["kind"] != "network" || custom["tool"] != "fixture_fetch" || custom["result"] != "deny" {
		t.Errorf("event custom %v", custom)
	}
	if labels, _ := ev["labels"].(map[string]any); labels["service"] != "mcp-secure" {
		t.Errorf("event labels %v", ev["labels"])
	}
	if in, _ := ev["input"].(map[string]any); fmt.Sprint(in["port"]) != "22" {
		t.Errorf("event input %v", ev["input"])
	}
}

func TestDecisionLogsSurviveServiceDown(t *testing.T) {
	s := newLogService(t)
	s.down.Store(true)
	d := startLogs(t, s, DecisionLogConfig{})
	for i := range 3 {
		d.Tee(record(i))
	}
	waitUntil(t, 10*time.Second, "a failed upload", func() bool { return s.attempts.Load() >= 1 })
	s.down.Store(false)
	for i := 3; i < 5; i++ {
		d.Tee(record(i))
	}
	waitUntil(t, 15*time.Second, "the buffered events", func() bool {
		events, _, _ := s.received()
		return len(events) >= 5
	})
	events, _, _ := s.received()
	seen := map[any]bool{}
	for _, e := range events {
		seen[e["decision_id"]] = true
	}
	for i := range 5 {
		if !seen[fmt.Sprintf("d-%d", i)] {
			t.Errorf("event d-%d lost while the service was down", i)
		}
	}
	if d.Dropped() != 0 {
		t.Errorf("dropped %d with room in the buffer", d.Dropped())
	}
}

func TestDecisionLogsDropOldestWhenFull(t *testing.T) {
	s := newLogService(t)
	s.down.Store(true)
	d := startLogs(t, s, DecisionLogConfig{BufferSizeLimitBytes: i64(2048), UploadSizeLimitBytes: i64(1024)})
	for i := range 300 {
		d.Tee(record(i))
	}
	waitUntil(t, 10*time.Second, "drops", func() bool { return d.Dropped() > 0 })
	s.down.Store(false)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d.Stop(ctx)
	events, _, _ := s.received()
	if len(events) >= 300 {
		t.Fatalf("all %d events arrived through a 2 KiB buffer", len(events))
	}
	// The newest survive: the oldest were dropped.
	seen := map[any]bool{}
	for _, e := range events {
		seen[e["decision_id"]] = true
	}
	if seen["d-0"] || !seen["d-299"] {
		t.Errorf("kept d-0 %v, d-299 %v: want the oldest dropped and the newest kept", seen["d-0"], seen["d-299"])
	}
}

func TestDecisionLogsTeeAfterStop(t *testing.T) {
	s := newLogService(t)
	d := startLogs(t, s, DecisionLogConfig{})
	d.Stop(context.Background())
	done := make(chan struct{})
	go func() {
		d.Tee(record(1)) // must neither panic nor block
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Tee after Stop blocks")
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
