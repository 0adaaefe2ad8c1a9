//go:build unix

package audit_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// TestGroupCommitKeepsOneChain: many calls logging at once on two servers
// sharing one log (their records go out in batches) leave one chain with
// every record in it, with fsync durability and across rotations.
func TestGroupCommitKeepsOneChain(t *testing.T) {
	for name, opts := range map[string]*audit.FileOptions{
		"fsync":  {Sync: true},
		"rotate": {MaxSize: 16 << 10, Retention: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			loggers := openWriters(t, p, opts)
			const perWriter, writers = 40, 4
			var wg sync.WaitGroup
			for i, l := range loggers {
				for g := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := range perWriter {
							rec := audit.Record{DecisionID: fmt.Sprintf("l%d-g%d-%d", i, g, j), Kind: audit.KindToolCall, Result: audit.ResultAllow}
							if err := l.Log(t.Context(), rec); err != nil {
								t.Error(err)
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			files := []string{}
			for n := 1000; n >= 1; n-- {
				if f := fmt.Sprintf("%s.%d", p, n); fileExists(f) {
					files = append(files, f)
				}
			}
			files = append(files, p)
			res, err := audit.Verify(files)
			if err != nil {
				t.Fatalf("the log does not verify: %v", err)
			}
			if want := len(loggers) * writers * perWriter; res.Records < want {
				t.Errorf("%d records, want the %d written", res.Records, want)
			}
		})
	}
}

// BenchmarkLogParallel is records logged at once from several calls on
// one file log: what group commit saves.
func BenchmarkLogParallel(b *testing.B) {
	s, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), nil)
	if err != nil {
		b.Fatal(err)
	}
	l := audit.New(s, nil)
	defer l.Close()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Log(b.Context(), audit.Record{DecisionID: "d", Kind: audit.KindToolCall, Result: audit.ResultAllow}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestLogBatchKeepsRecordsTogether: the records of one LogBatch are
// written in order and next to each other, while other calls log at
// once, with fsync durability and across rotations; the log verifies.
func TestLogBatchKeepsRecordsTogether(t *testing.T) {
	for name, opts := range map[string]*audit.FileOptions{
		"fsync":  {Sync: true},
		"rotate": {MaxSize: 8 << 10, Retention: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			s, err := audit.Open(p, opts)
			if err != nil {
				t.Fatal(err)
			}
			l := audit.New(s, nil)
			defer l.Close()
			const perWriter, writers = 30, 4
			var wg sync.WaitGroup
			for g := range writers {
				wg.Add(2)
				go func() {
					defer wg.Done()
					for j := range perWriter {
						id := fmt.Sprintf("pair-%d-%d", g, j)
						err := l.LogBatch(t.Context(), []audit.Record{
							{DecisionID: id, Kind: audit.KindToolCall, Result: audit.ResultAllow},
							{DecisionID: id, Kind: audit.KindToolResult, Result: audit.ResultAllow, Status: audit.StatusOK},
						})
						if err != nil {
							t.Error(err)
							return
						}
					}
				}()
				go func() {
					defer wg.Done()
					for j := range perWriter {
						if err := l.Log(t.Context(), audit.Record{DecisionID: fmt.Sprintf("single-%d-%d", g, j), Kind: audit.KindToolCall, Result: audit.ResultDeny}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			var files []string
			for n := 1000; n >= 1; n-- {
				if f := fmt.Sprintf("%s.%d", p, n); fileExists(f) {
					files = append(files, f)
				}
			}
			files = append(files, p)
			if _, err := audit.Verify(files); err != nil {
				t.Fatalf("the log does not verify: %v", err)
			}
			var recs []audit.Record
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
					var r audit.Record
					if err := json.Unmarshal([]byte(line), &r); err != nil {
						t.Fatal(err)
					}
					if r.Kind != audit.KindGenesis {
						recs = append(recs, r)
					}
				}
			}
			if want := writers * perWriter * 3; len(recs) != want {
				t.Fatalf("%d records, want %d", len(recs), want)
			}
			for i, r := range recs {
				if !strings.HasPrefix(r.DecisionID, "pair-") || r.Kind != audit.KindToolCall {
					continue
				}
				if i+1 == len(recs) || recs[i+1].DecisionID != r.DecisionID || recs[i+1].Kind != audit.KindToolResult {
					t.Fatalf("record %d (%s) is not followed by its result record", i, r.DecisionID)
				}
			}
		})
	}
}

// BenchmarkLogBatchPair is a call's two records written together, against
// writing them one after the other, on a file log.
func BenchmarkLogBatchPair(b *testing.B) {
	pair := []audit.Record{
		{DecisionID: "d", Kind: audit.KindToolCall, Result: audit.ResultAllow},
		{DecisionID: "d", Kind: audit.KindToolResult, Result: audit.ResultAllow, Status: audit.StatusOK},
	}
	for name, write := range map[string]func(*audit.Logger) error{
		"batch": func(l *audit.Logger) error { return l.LogBatch(b.Context(), pair) },
		"each": func(l *audit.Logger) error {
			if err := l.Log(b.Context(), pair[0]); err != nil {
				return err
			}
			return l.Log(b.Context(), pair[1])
		},
	} {
		b.Run(name, func(b *testing.B) {
			s, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), nil)
			if err != nil {
				b.Fatal(err)
			}
			l := audit.New(s, nil)
			defer l.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := write(l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLogFile is one record at a time on a file log, as a lone call
// writes its records: what each costs on the call's path.
func BenchmarkLogFile(b *testing.B) {
	s, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), nil)
	if err != nil {
		b.Fatal(err)
	}
	l := audit.New(s, nil)
	defer l.Close()
	rec := audit.Record{DecisionID: audit.NewID(), SessionID: audit.NewID(), RequestID: "12", Kind: audit.KindToolCall,
		Tool: "create_bug", Client: &audit.Client{Name: "claude-code", Version: "2.0.1"}, Result: audit.ResultAllow,
		Path: "mcp/tools/decision", Input: input1KiB()}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Log(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
}
