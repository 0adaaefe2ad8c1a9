package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/audit/audittest"
)

func TestSinks(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		audittest.TestSink(t, func(t *testing.T) (audit.Sink, func() []byte) {
			p := filepath.Join(t.TempDir(), "audit.log")
			s, err := audit.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() []byte { b, _ := os.ReadFile(p); return b }
		})
	})
	t.Run("writer", func(t *testing.T) {
		audittest.TestSink(t, func(t *testing.T) (audit.Sink, func() []byte) {
			var buf bytes.Buffer
			return audit.NewWriterSink(&buf), func() []byte { return buf.Bytes() }
		})
	})
}

func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "a", "b")
	p := filepath.Join(dir, "audit.log")
	s, err := audit.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]os.FileMode{p: 0o600, dir: 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", path, st.Mode().Perm(), want)
		}
	}
	// An existing, too open file is tightened.
	loose := filepath.Join(t.TempDir(), "loose.log")
	os.WriteFile(loose, nil, 0o644)
	s2, err := audit.OpenFile(loose)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if st, _ := os.Stat(loose); st.Mode().Perm() != 0o600 {
		t.Errorf("existing file left at %o", st.Mode().Perm())
	}
}

func TestLogFullDiskFailsClosed(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	s, err := audit.OpenFile("/dev/full")
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	l := audit.New(s, &audit.Options{Log: slogTo(&stderr)})
	err = l.Log(t.Context(), audit.Record{DecisionID: "d1", Kind: audit.KindToolCall, Result: audit.ResultAllow})
	if !errors.Is(err, audit.ErrWrite) {
		t.Fatalf("err = %v, want ErrWrite", err)
	}
	if !strings.Contains(stderr.String(), "audit write failed") {
		t.Errorf("failure not reported on stderr: %q", stderr.String())
	}
}

func TestLogDetachedFromCancelledRequest(t *testing.T) {
	var buf bytes.Buffer
	clock := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("X", 3600)) }
	l := audit.New(audit.NewWriterSink(&buf), &audit.Options{Clock: clock, Labels: map[string]string{"service": "mcp-secure"}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := l.Log(ctx, audit.Record{
		DecisionID: "d2", RequestID: "7", Kind: audit.KindToolCall, Tool: "t", Result: audit.ResultDeny,
		Reasons: []string{"no"}, Input: map[string]any{"arguments": map[string]any{"password": "p4ss", "q": "ok"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["timestamp"] != "2026-03-01T11:00:00.000000005Z" {
		t.Errorf("timestamp = %v", rec["timestamp"])
	}
	args := rec["input"].(map[string]any)["arguments"].(map[string]any)
	if args["password"] != audit.Redacted || args["q"] != "ok" {
		t.Errorf("input not redacted: %v", args)
	}
	if rec["labels"].(map[string]any)["service"] != "mcp-secure" || rec["request_id"] != "7" {
		t.Errorf("record = %v", rec)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := audit.NewID()
		if len(id) != 36 || id[14] != '4' || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func BenchmarkLog(b *testing.B) {
	l := audit.New(audit.NewWriterSink(discard{}), nil)
	rec := audit.Record{DecisionID: audit.NewID(), Kind: audit.KindToolCall, Tool: "search_tools", Result: audit.ResultAllow,
		Input: map[string]any{"tool": "search_tools", "arguments": map[string]any{"query": "find the bug tracker", "detail_level": "full"}}}
	for b.Loop() {
		if err := l.Log(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
