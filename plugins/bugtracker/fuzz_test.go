package bugtracker

import (
	"regexp"
	"strings"
	"testing"
)

// FuzzParseID: any text is either refused or read as a positive sequence
// number whose spelling reads back the same.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"BUG-001", "bug-7", "BUG-", "BUG-+1", "BUG--1", "BUG-9223372036854775807", " BUG-12 ", "BUG-1e3", "BUG-\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseID(s)
		if err != nil {
			return
		}
		if n < 1 {
			t.Fatalf("parseID(%q) = %d", s, n)
		}
		if back, err := parseID(formatID(n)); err != nil || back != n {
			t.Fatalf("parseID(formatID(%d)) = %d, %v", n, back, err)
		}
	})
}

// FuzzMatchExpr: whatever the query, the FTS5 expression is a list of
// quoted terms with nothing FTS5 could read as syntax.
func FuzzMatchExpr(f *testing.F) {
	for _, s := range []string{"crash", `"login" OR NEAR(a b)`, "title:x*", "^start", "ünïcode wörds", "a-b_c", `""`, "(((", "AND", strings.Repeat("w ", 20)} {
		f.Add(s)
	}
	term := regexp.MustCompile(`^"[\p{L}\p{N}]+"$`)
	f.Fuzz(func(t *testing.T, q string) {
		expr, err := matchExpr(q)
		if err != nil {
			return
		}
		terms := strings.Split(expr, " ")
		if len(terms) == 0 || len(terms) > maxTerms {
			t.Fatalf("matchExpr(%q) = %q", q, expr)
		}
		for _, tm := range terms {
			if !term.MatchString(tm) {
				t.Fatalf("matchExpr(%q): term %q is not a quoted word", q, tm)
			}
		}
	})
}

// FuzzCursor: a cursor is accepted only by the query that made it.
func FuzzCursor(f *testing.F) {
	f.Add(int64(1), "open", "", "other")
	f.Add(int64(123456), "", "crash", "crash ")
	f.Fuzz(func(t *testing.T, rowid int64, status, query, otherQuery string) {
		if rowid < 1 {
			return
		}
		a := &filter{status: status, query: query}
		c := a.encodeCursor(rowid)
		a.cursor = c
		if got, err := a.decodeCursor(); err != nil || got != rowid {
			t.Fatalf("round trip: %d, %v", got, err)
		}
		if otherQuery != query {
			b := &filter{status: status, query: otherQuery, cursor: c}
			if _, err := b.decodeCursor(); err == nil {
				t.Fatalf("cursor of %q accepted for %q", query, otherQuery)
			}
		}
	})
}
