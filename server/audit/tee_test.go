package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestTraceIDsAndTee: trace_id, span_id and trace_origin are encoded (and
// chained), and Tee sees each record as written, without its chain
// fields.
func TestTraceIDsAndTee(t *testing.T) {
	var buf bytes.Buffer
	var teed [][]byte
	l := New(NewWriterSink(&buf), &Options{Tee: func(b []byte) { teed = append(teed, b) }})
	r := Record{DecisionID: "d1", Kind: KindToolCall, Tool: "x", Result: ResultDeny,
		Reasons: []string{"key sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"},
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", TraceOrigin: TraceOriginClient}
	if err := l.Log(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["trace_id"] != r.TraceID || rec["span_id"] != r.SpanID || rec["trace_origin"] != "client" || rec["hash"] == nil {
		t.Errorf("record %v", rec)
	}
	if len(teed) != 1 {
		t.Fatalf("teed %d records, want 1 (not the genesis)", len(teed))
	}
	var got map[string]any
	if err := json.Unmarshal(teed[0], &got); err != nil {
		t.Fatal(err)
	}
	if got["decision_id"] != "d1" || got["trace_id"] != r.TraceID || got["hash"] != nil || got["prev_hash"] != nil {
		t.Errorf("teed %v", got)
	}
	if strings.Contains(string(teed[0]), "abcdefghijklmnopqrstuvwxyz") {
		t.Error("the teed record is not redacted")
	}
	if res, err := VerifyReader("audit.log", strings.NewReader(buf.String())); err != nil || res.Records != len(lines) {
		t.Errorf("chain does not verify: %v %+v", err, res)
	}
}

// TestTeeOnFileSink: records written through the file sink's group commit
// reach Tee too, each once, from concurrent writers.
func TestTeeOnFileSink(t *testing.T) {
	sink, err := OpenFile(t.TempDir() + "/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	l := New(sink, &Options{Tee: func(b []byte) {
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		seen[rec["decision_id"].(string)]++
		mu.Unlock()
	}})
	defer l.Close()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := Record{DecisionID: fmt.Sprintf("d-%d-%d", w, i), Kind: KindToolCall, Tool: "x", Result: ResultAllow}
				if err := l.Log(t.Context(), r); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != writers*each {
		t.Fatalf("teed %d distinct records, want %d", len(seen), writers*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s teed %d times", id, n)
		}
	}
}

func TestTraceOrigin(t *testing.T) {
	if got := TraceOrigin(t.Context()); got != TraceOriginServer {
		t.Errorf("unmarked context: %q", got)
	}
	if got := TraceOrigin(WithClientTrace(t.Context())); got != TraceOriginClient {
		t.Errorf("marked context: %q", got)
	}
}
