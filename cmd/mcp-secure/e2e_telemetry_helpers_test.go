package main

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// collector is an in-process OTLP receiver on loopback, over HTTP
// (/v1/traces, /v1/metrics) or gRPC. It keeps what it receives, and the
// raw requests as JSON for the search for secrets.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	colmetricpb.UnimplementedMetricsServiceServer

	mu      sync.Mutex
	spans   []*tracepb.Span
	metrics []*metricpb.Metric
	raw     []string
	service string
}

func (c *collector) addTraces(req *coltracepb.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw = append(c.raw, protojson.Format(req))
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				c.service = a.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
}

func (c *collector) addMetrics(req *colmetricpb.ExportMetricsServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw = append(c.raw, protojson.Format(req))
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			c.metrics = append(c.metrics, sm.Metrics...)
		}
	}
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.addTraces(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// metricsServer adapts the collector to the metrics service (both
// services name their method Export).
type metricsServer struct {
	colmetricpb.UnimplementedMetricsServiceServer
	c *collector
}

func (m metricsServer) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	m.c.addMetrics(req)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

// startHTTPCollector serves OTLP/HTTP (protobuf) on loopback.
func startHTTPCollector(t *testing.T) (*collector, string) {
	t.Helper()
	c := &collector{}
	mux := http.NewServeMux()
	handle := func(path string, msg func() proto.Message, add func(proto.Message), resp proto.Message) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
			m := msg()
			if err != nil || proto.Unmarshal(body, m) != nil {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			add(m)
			out, _ := proto.Marshal(resp)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(out)
		})
	}
	handle("/v1/traces", func() proto.Message { return &coltracepb.ExportTraceServiceRequest{} },
		func(m proto.Message) { c.addTraces(m.(*coltracepb.ExportTraceServiceRequest)) }, &coltracepb.ExportTraceServiceResponse{})
	handle("/v1/metrics", func() proto.Message { return &colmetricpb.ExportMetricsServiceRequest{} },
		func(m proto.Message) { c.addMetrics(m.(*colmetricpb.ExportMetricsServiceRequest)) }, &colmetricpb.ExportMetricsServiceResponse{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// startGRPCCollector serves OTLP/gRPC on loopback.
func startGRPCCollector(t *testing.T) (*collector, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, c)
	colmetricpb.RegisterMetricsServiceServer(s, metricsServer{c: c})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return c, "http://" + ln.Addr().String()
}

// waitUntil polls until cond holds, for at most d.
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

func (c *collector) snapshot() ([]*tracepb.Span, []*metricpb.Metric, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...), append([]*metricpb.Metric(nil), c.metrics...), strings.Join(c.raw, "\n")
}

// attr returns a span attribute as a string ("" if absent); a string
// array is joined with "; ".
func attr(attrs []*commonpb.KeyValue, key string) string {
	for _, a := range attrs {
		if a.Key != key {
			continue
		}
		switch v := a.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_ArrayValue:
			var parts []string
			for _, x := range v.ArrayValue.Values {
				parts = append(parts, x.GetStringValue())
			}
			return strings.Join(parts, "; ")
		}
	}
	return ""
}

func hexID(b []byte) string { return hex.EncodeToString(b) }
