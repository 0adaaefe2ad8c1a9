//go:build unix

package audit_test

import (
	"fmt"
	"os"
	"path/filepath"
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
