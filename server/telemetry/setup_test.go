package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestNewExportsSpansOverHTTP(t *testing.T) {
	var mu sync.Mutex
	var names []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				t.Errorf("traces request: %v", err)
			}
			mu.Lock()
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						names = append(names, s.Name)
					}
				}
			}
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	tel, err := New(t.Context(), Config{Enabled: true, Endpoint: srv.URL, Protocol: "http/protobuf", ShutdownTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, s := tel.TracerProvider().Tracer(ScopeName).Start(t.Context(), "tools/call echo")
	s.End()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(names)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no span exported within the schedule delay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if names[0] != "tools/call echo" {
		t.Errorf("exported %v", names)
	}
}
