// Package audittest checks an audit.Sink against the contract every sink
// must keep.
package audittest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// TestSink checks a sink built by newSink. contents returns everything the
// sink has stored so far. It checks that each record becomes exactly one
// newline-terminated line with its bytes intact, that concurrent writes do
// not interleave, that writing after Close fails, and that records a
// Logger writes through the sink form one verifiable hash chain.
func TestSink(t *testing.T, newSink func(t *testing.T) (sink audit.Sink, contents func() []byte)) {
	t.Helper()
	t.Run("one-line-per-record", func(t *testing.T) {
		s, contents := newSink(t)
		recs := [][]byte{[]byte(`{"a":1}`), []byte(`{"b":"two words"}`), []byte(`{"c":[1,2,3]}`)}
		for _, r := range recs {
			if err := s.Write(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		want := append(bytes.Join(recs, []byte("\n")), '\n')
		if got := contents(); !bytes.Equal(got, want) {
			t.Errorf("stored %q, want %q", got, want)
		}
		s.Close()
	})
	t.Run("concurrent-writes-do-not-interleave", func(t *testing.T) {
		s, contents := newSink(t)
		const writers, each = 8, 50
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					rec := fmt.Sprintf(`{"w":%d,"i":%d,"pad":%q}`, w, i, bytes.Repeat([]byte("x"), 512))
					if err := s.Write(context.Background(), []byte(rec)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		lines := bytes.Split(bytes.TrimSuffix(contents(), []byte("\n")), []byte("\n"))
		if len(lines) != writers*each {
			t.Fatalf("%d lines, want %d", len(lines), writers*each)
		}
		for _, l := range lines {
			if !json.Valid(l) {
				t.Fatalf("interleaved line: %.80q", l)
			}
		}
		s.Close()
	})
	t.Run("logger-chain-verifies", func(t *testing.T) {
		s, contents := newSink(t)
		l := audit.New(s, nil)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 25 {
					r := audit.Record{DecisionID: fmt.Sprintf("%d-%d", w, i), Kind: audit.KindToolCall, Result: audit.ResultAllow}
					if err := l.Log(context.Background(), r); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		res, err := audit.VerifyReader("sink", bytes.NewReader(contents()))
		if err != nil {
			t.Fatalf("chain does not verify: %v", err)
		}
		if res.Records < 100 {
			t.Errorf("%d records verified, want at least 100", res.Records)
		}
		l.Close()
	})
	t.Run("write-after-close-fails", func(t *testing.T) {
		s, _ := newSink(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(t.Context(), []byte(`{}`)); err == nil {
			t.Error("write after Close succeeded")
		} else if !errors.Is(err, audit.ErrClosed) {
			t.Logf("write after Close: %v", err)
		}
	})
}
