//go:build unix

package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// decisionIDs are the decision ids of the records in the log at p, in
// order, genesis records left out.
func decisionIDs(t *testing.T, p string) []string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for line := range bytes.Lines(data) {
		var r struct {
			DecisionID string `json:"decision_id"`
			Kind       string `json:"kind"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if r.Kind != audit.KindGenesis {
			ids = append(ids, r.DecisionID)
		}
	}
	return ids
}

// TestStage: records logged under a stage are written by its Commit, in
// the order they were logged, on one chain with the records written
// directly; none is written before; Unstaged writes at once.
func TestStage(t *testing.T) {
	for name, opts := range map[string]*audit.FileOptions{
		"default": nil,
		"fsync":   {Sync: true},
		"rotate":  {MaxSize: 4 << 10, Retention: 100},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			s, err := audit.Open(p, opts)
			if err != nil {
				t.Fatal(err)
			}
			var teed []string
			l := audit.New(s, &audit.Options{Tee: func(b []byte) {
				var r audit.Record
				if err := json.Unmarshal(b, &r); err != nil {
					t.Error(err)
				}
				teed = append(teed, r.DecisionID)
			}})
			defer l.Close()
			rec := func(id string) audit.Record {
				return audit.Record{DecisionID: id, Kind: audit.KindToolCall, Result: audit.ResultAllow, Tool: strings.Repeat("t", 100)}
			}
			if err := l.Log(t.Context(), rec("before")); err != nil {
				t.Fatal(err)
			}
			var st audit.Stage
			ctx := audit.WithStage(t.Context(), &st)
			var want []string
			for i := range 20 {
				id := string(rune('a' + i))
				if i%2 == 0 {
					if err := l.Log(ctx, rec(id)); err != nil {
						t.Fatal(err)
					}
					want = append(want, id)
					continue
				}
				if err := l.LogBatch(ctx, []audit.Record{rec(id + "1"), rec(id + "2")}); err != nil {
					t.Fatal(err)
				}
				want = append(want, id+"1", id+"2")
			}
			if st.Len() != len(want) {
				t.Errorf("the stage holds %d records, want %d", st.Len(), len(want))
			}
			if got := decisionIDs(t, p); !cmp.Equal(got, []string{"before"}) {
				t.Fatalf("written before Commit: %v", got)
			}
			if err := l.Log(audit.Unstaged(ctx), rec("unstaged")); err != nil {
				t.Fatal(err)
			}
			if err := st.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if st.Len() != 0 {
				t.Errorf("the stage holds %d records after Commit", st.Len())
			}
			if err := st.Commit(t.Context()); err != nil {
				t.Errorf("an empty Commit: %v", err)
			}
			all := append([]string{"before", "unstaged"}, want...)
			var got []string
			files, _ := filepath.Glob(p + ".*")
			for i := len(files); i >= 1; i-- {
				got = append(got, decisionIDs(t, p+"."+strconv.Itoa(i))...)
			}
			got = append(got, decisionIDs(t, p)...)
			if diff := cmp.Diff(all, got); diff != "" {
				t.Errorf("records in the log (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(all, teed); diff != "" {
				t.Errorf("records teed (-want +got):\n%s", diff)
			}
			var chain []string
			for i := len(files); i >= 1; i-- {
				chain = append(chain, p+"."+strconv.Itoa(i))
			}
			if _, err := audit.Verify(append(chain, p)); err != nil {
				t.Errorf("the log does not verify: %v", err)
			}
		})
	}
}

// TestStageCommitFailsClosed: a Commit whose records cannot be written
// fails with ErrWrite, as a Log would, and writes nothing of them.
func TestStageCommitFailsClosed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	l := audit.New(s, nil)
	defer l.Close()
	var st audit.Stage
	ctx := audit.WithStage(t.Context(), &st)
	for _, id := range []string{"a", "b"} {
		if err := l.Log(ctx, audit.Record{DecisionID: id, Kind: audit.KindToolCall, Result: audit.ResultAllow}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	err = st.Commit(t.Context())
	if !errors.Is(err, audit.ErrWrite) || !errors.Is(err, audit.ErrReplaced) {
		t.Fatalf("Commit = %v, want ErrWrite and ErrReplaced", err)
	}
	if got := decisionIDs(t, p+".moved"); len(got) != 0 {
		t.Errorf("records written by a failed Commit: %v", got)
	}
}
