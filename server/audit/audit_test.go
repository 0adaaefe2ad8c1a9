//go:build unix

package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// TestOpenRefuses: a symlink, FIFO, directory, device or hard-linked file
// at the audit path is refused at once, without blocking.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.log")
	os.WriteFile(target, []byte("keep\n"), 0o600)
	linked := filepath.Join(dir, "linked.log")
	os.WriteFile(linked, nil, 0o600)
	os.Link(linked, filepath.Join(dir, "second-name.log"))
	for _, tc := range []struct {
		name, want string
		make       func(p string) error
	}{
		{"deny/symlink", "symbolic link", func(p string) error { return os.Symlink(target, p) }},
		{"deny/dangling-symlink", "symbolic link", func(p string) error { return os.Symlink(filepath.Join(dir, "nothing"), p) }},
		{"deny/fifo", "not a regular file", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"deny/directory", "directory", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"deny/device", "character device", func(p string) error { return os.Symlink("/dev/null", p) }},
		{"deny/hard-link", "hard links", func(p string) error { return os.Link(linked, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-"))
			if err := tc.make(p); err != nil {
				t.Fatal(err)
			}
			if tc.name == "deny/device" {
				p = "/dev/null"
			}
			done := make(chan error, 1)
			go func() {
				s, err := audit.OpenFile(p)
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("OpenFile(%s) = %v, want an error saying %q", p, err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("OpenFile blocked")
			}
		})
	}
	if data, _ := os.ReadFile(target); string(data) != "keep\n" {
		t.Errorf("symlink target was written: %q", data)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o600 {
		t.Errorf("symlink target mode changed")
	}
}

// TestSwappedFileFailsClosed: once the path stops naming the open file,
// every write fails with ErrReplaced and says so on stderr.
func TestSwappedFileFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		swap func(p string) error
	}{
		{"deny/replaced", func(p string) error {
			q := p + ".forged"
			os.WriteFile(q, []byte("{\"forged\":true}\n"), 0o600)
			return os.Rename(q, p)
		}},
		{"deny/removed", os.Remove},
		{"deny/truncated", func(p string) error { return os.Truncate(p, 0) }},
		{"deny/rewritten-in-place", func(p string) error { return os.WriteFile(p, []byte("{}\n"), 0o600) }},
		{"deny/renamed", func(p string) error { return os.Rename(p, p+".moved") }},
		{"deny/symlinked", func(p string) error {
			os.Rename(p, p+".real")
			return os.Symlink(p+".real", p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			s, err := audit.OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			l := audit.New(s, &audit.Options{Log: slogTo(&stderr)})
			defer l.Close()
			rec := audit.Record{DecisionID: "d", Kind: audit.KindToolCall, Result: audit.ResultAllow}
			if err := l.Log(t.Context(), rec); err != nil {
				t.Fatal(err)
			}
			if err := tc.swap(p); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				err := l.Log(t.Context(), rec)
				if !errors.Is(err, audit.ErrWrite) || !errors.Is(err, audit.ErrReplaced) {
					t.Fatalf("err = %v, want ErrWrite and ErrReplaced", err)
				}
			}
			if !strings.Contains(stderr.String(), "no longer names the open file") {
				t.Errorf("stderr does not say why: %q", stderr.String())
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

func TestLogWriteFailureFailsClosed(t *testing.T) {
	var stderr bytes.Buffer
	l := audit.New(audit.NewWriterSink(failingWriter{}), &audit.Options{Log: slogTo(&stderr)})
	err := l.Log(t.Context(), audit.Record{DecisionID: "d1", Kind: audit.KindToolCall, Result: audit.ResultAllow})
	if !errors.Is(err, audit.ErrWrite) {
		t.Fatalf("err = %v, want ErrWrite", err)
	}
	if !strings.Contains(stderr.String(), "audit write failed") {
		t.Errorf("failure not reported on stderr: %q", stderr.String())
	}
}

func decodeLines(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range bytes.SplitSeq(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogDetachedFromCancelledRequest(t *testing.T) {
	var buf bytes.Buffer
	clock := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("X", 3600)) }
	l := audit.New(audit.NewWriterSink(&buf), &audit.Options{Clock: clock, Labels: map[string]string{"service": "mcp-secure"}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := l.Log(ctx, audit.Record{
		DecisionID: "d2", RequestID: "7", SessionID: "s1", Kind: audit.KindToolCall, Tool: "t", Result: audit.ResultDeny,
		Reasons: []string{"no"}, Input: map[string]any{"arguments": map[string]any{"password": "p4ss", "q": "ok"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := decodeLines(t, buf.Bytes())[0]
	if rec["timestamp"] != "2026-03-01T11:00:00.000000005Z" {
		t.Errorf("timestamp = %v", rec["timestamp"])
	}
	args := rec["input"].(map[string]any)["arguments"].(map[string]any)
	if p, _ := args["password"].(string); !audit.IsMarker(p) || args["q"] != "ok" {
		t.Errorf("input not redacted: %v", args)
	}
	if rec["labels"].(map[string]any)["service"] != "mcp-secure" || rec["request_id"] != "7" || rec["session_id"] != "s1" {
		t.Errorf("record = %v", rec)
	}
}

// A record decided by one bundle revision says so in its labels, though
// another revision's label is in force when it is written; the others
// take the label in force, and the labels in force are not changed.
func TestRecordRevisionIsItsLabel(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(audit.NewWriterSink(&buf), &audit.Options{Labels: map[string]string{"service": "mcp-secure", audit.LabelBundleRevision: "r1"}})
	l.SetLabel(audit.LabelBundleRevision, "r2")
	for _, r := range []audit.Record{
		{DecisionID: "a", Kind: audit.KindToolCall, Result: audit.ResultAllow, Revision: new("r1")},
		{DecisionID: "b", Kind: audit.KindToolCall, Result: audit.ResultAllow},
		{DecisionID: "c", Kind: audit.KindToolCall, Result: audit.ResultAllow, Revision: new("r2")},
		{DecisionID: "d", Kind: audit.KindToolCall, Result: audit.ResultAllow, Revision: new("")}, // a bundle with no revision
	} {
		if err := l.Log(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"a": "r1", "b": "r2", "c": "r2", "d": ""}
	for _, rec := range decodeLines(t, buf.Bytes()) {
		labels := rec["labels"].(map[string]any)
		if rev, ok := labels[audit.LabelBundleRevision]; !ok || rev != want[rec["decision_id"].(string)] || labels["service"] != "mcp-secure" {
			t.Errorf("record %v: labels %v", rec["decision_id"], labels)
		}
		if _, ok := rec["revision"]; ok {
			t.Errorf("record %v carries its revision outside the labels", rec["decision_id"])
		}
	}
	if got := l.Label(audit.LabelBundleRevision); got != "r2" {
		t.Errorf("label in force became %q", got)
	}
}

// TestLogRedactsEveryClientString: tool, reasons, keys, client, error,
// ids and input are all redacted, partially.
func TestLogRedactsEveryClientString(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(audit.NewWriterSink(&buf), nil)
	tok := "Bearer AAAAAAAAAAAA"
	err := l.Log(t.Context(), audit.Record{
		DecisionID: "d", Kind: audit.KindValidation, Result: audit.ResultDeny,
		Tool:      "tool " + tok,
		RequestID: "req " + tok, SessionID: "sess " + tok,
		Client:  &audit.Client{Name: "client " + tok, Version: "1.0 " + ghToken},
		Reasons: []string{"bad value " + tok},
		Error:   "failed: " + tok,
		Input:   map[string]any{"arguments": map[string]any{"key " + ghToken: "value " + tok, "cmd": "id # " + tok}},
	})
	if err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, leak := range []string{"AAAAAAAAAAAA", ghToken} {
		if strings.Contains(line, leak) {
			t.Errorf("record leaks %q: %s", leak, line)
		}
	}
	for _, keep := range []string{`"tool":"tool Bearer [R]"`, `"request_id":"req Bearer [R]"`, `"session_id":"sess Bearer [R]"`,
		`"name":"client Bearer [R]"`, `"version":"1.0 [R]"`, `"reasons":["bad value Bearer [R]"]`,
		`"error":"failed: Bearer [R]"`, `"key [R]":"value Bearer [R]"`, `"cmd":"id # Bearer [R]"`} {
		if !strings.Contains(norm(line), keep) {
			t.Errorf("record lacks %s: %s", keep, norm(line))
		}
	}
}

// TestLogNewFields: the fields of tool_result and audit_summary records.
func TestLogNewFields(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(audit.NewWriterSink(&buf), nil)
	l.Log(t.Context(), audit.Record{DecisionID: "d", Kind: audit.KindToolResult, Status: audit.StatusTimeout, DurationNS: 5, SessionID: "s"})
	l.Log(t.Context(), audit.Record{DecisionID: "e", Kind: audit.KindSummary, Result: audit.ResultDeny, Count: 42, WindowNS: int64(time.Second)})
	recs := decodeLines(t, buf.Bytes())
	if recs[0]["kind"] != "tool_result" || recs[0]["status"] != "timeout" || recs[0]["duration_ns"] != 5.0 || recs[0]["session_id"] != "s" {
		t.Errorf("tool_result record = %v", recs[0])
	}
	if recs[1]["kind"] != "audit_summary" || recs[1]["count"] != 42.0 || recs[1]["window_ns"] != 1e9 {
		t.Errorf("summary record = %v", recs[1])
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestLogCaps: a large value becomes {"truncated", "bytes", "sha256"}; a 1
// MB tool name makes a small record.
func TestLogCaps(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(audit.NewWriterSink(&buf), nil)
	huge := strings.Repeat("x", 1<<20)
	mid := strings.Repeat("y", 3000)
	many := map[string]any{}
	for i := range 40 {
		many[fmt.Sprintf("k%02d", i)] = mid
	}
	in := map[string]any{"tool": huge, "arguments": map[string]any{"content": huge, "path": "/w/f", huge: 1, "list": []any{mid, mid}}}
	if err := l.Log(t.Context(), audit.Record{DecisionID: "d", Kind: audit.KindValidation, Result: audit.ResultDeny,
		Tool: huge, Reasons: []string{huge}, Input: in}); err != nil {
		t.Fatal(err)
	}
	if err := l.Log(t.Context(), audit.Record{DecisionID: "e", Kind: audit.KindToolCall, Result: audit.ResultDeny, Input: many}); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines[0]) > 2048 {
		t.Errorf("record with a 1 MB tool name is %d bytes", len(lines[0]))
	}
	recs := decodeLines(t, buf.Bytes())
	tool, _ := recs[0]["tool"].(map[string]any)
	if tool["truncated"] != true || tool["bytes"] != float64(1<<20) || tool["sha256"] != sha(huge) {
		t.Errorf("tool = %v", recs[0]["tool"])
	}
	args := recs[0]["input"].(map[string]any)["arguments"].(map[string]any)
	if args["path"] != "/w/f" || args["content"].(map[string]any)["truncated"] != true {
		t.Errorf("arguments = %v", args)
	}
	if list := args["list"].(map[string]any); list["truncated"] != true {
		t.Errorf("a 6000-byte array was kept: %v", list)
	}
	input := recs[1]["input"].(map[string]any)
	if input["truncated"] != true || len(lines[1]) > audit.DefaultMaxRecordBytes+200 {
		t.Errorf("record over the cap: %d bytes, input %v", len(lines[1]), input["truncated"])
	}
}

// TestWorstCaseRecord: every client-controlled field at its largest still
// makes a record under MaxRecordBytes plus the chain fields.
func TestWorstCaseRecord(t *testing.T) {
	for _, tc := range []struct{ name, unit string }{
		{"plain", "v"},
		{"escaped", "\x01"}, // six bytes of JSON for each byte of input
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := audit.New(audit.NewWriterSink(&buf), nil)
			v := strings.Repeat(tc.unit, audit.DefaultMaxValueBytes-10)
			in := map[string]any{}
			for i := range 100 {
				in[strings.Repeat(tc.unit, audit.DefaultMaxValueBytes-10)+fmt.Sprint(i)] = v
			}
			r := audit.Record{DecisionID: audit.NewID(), ParentDecisionID: audit.NewID(), Kind: audit.KindValidation, Result: audit.ResultDeny,
				Tool: v, RequestID: v, SessionID: v, Client: &audit.Client{Name: v, Version: v}, Reasons: []string{v, v}, Error: v, Input: in,
				Path: "mcp/tools/decision", Labels: map[string]string{"service": "mcp-secure"}}
			if err := l.Log(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			line := bytes.TrimSpace(buf.Bytes())
			t.Logf("worst-case record (%s): %d bytes", tc.name, len(line))
			if len(line) > audit.DefaultMaxRecordBytes+200 {
				t.Errorf("record is %d bytes", len(line))
			}
			if _, err := audit.VerifyReader("w", bytes.NewReader(buf.Bytes())); err != nil {
				t.Error(err)
			}
		})
	}
}

type fakeMasker struct {
	rules []any
	err   error
	saw   map[string]any
}

func (m *fakeMasker) Mask(_ context.Context, rec map[string]any) ([]any, error) {
	m.saw = rec
	return m.rules, m.err
}

func TestLogMasks(t *testing.T) {
	in := map[string]any{"arguments": map[string]any{"password2": "x", "content": "file body", "keep": "k"}, "stdin": "input"}
	for _, tc := range []struct {
		name               string
		masker             *fakeMasker
		erased, masked     []any
		gone, kept, record []string
	}{
		{"erase-and-upsert", &fakeMasker{rules: []any{"/input/stdin", "/input/missing",
			map[string]any{"op": "upsert", "path": "/input/arguments/content", "value": "[masked]"},
			map[string]any{"op": "remove", "path": "/input/arguments/password2"},
			"/decision_id", "/prev_hash"}},
			[]any{"/input/arguments/password2", "/input/stdin"}, []any{"/input/arguments/content"},
			[]string{"file body", `"stdin"`, `"password2":`}, []string{`"keep":"k"`, `"content":"[masked]"`, `"decision_id":"d"`}, nil},
		{"error-erases-input", &fakeMasker{err: errors.New("eval timed out")},
			[]any{"/input"}, nil, []string{"file body", `"keep"`}, []string{`"decision_id":"d"`}, []string{"mask_error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := audit.New(audit.NewWriterSink(&buf), &audit.Options{Masker: tc.masker})
			if err := l.Log(t.Context(), audit.Record{DecisionID: "d", Kind: audit.KindCommand, Result: audit.ResultAllow, Input: in}); err != nil {
				t.Fatal(err)
			}
			if tc.masker.saw["kind"] != "command" {
				t.Errorf("masker saw %v", tc.masker.saw)
			}
			line := buf.String()
			rec := decodeLines(t, buf.Bytes())[0]
			if fmt.Sprint(rec["erased"]) != fmt.Sprint(tc.erased) || (tc.masked == nil) != (rec["masked"] == nil) || tc.masked != nil && fmt.Sprint(rec["masked"]) != fmt.Sprint(tc.masked) {
				t.Errorf("erased %v masked %v", rec["erased"], rec["masked"])
			}
			for _, g := range tc.gone {
				if strings.Contains(line, g) {
					t.Errorf("masked record still has %s: %s", g, line)
				}
			}
			for _, k := range append(tc.kept, tc.record...) {
				if !strings.Contains(line, k) {
					t.Errorf("record lacks %s: %s", k, line)
				}
			}
			if _, err := audit.VerifyReader("m", &buf); err != nil {
				t.Errorf("masked record does not verify: %v", err)
			}
		})
	}
	if in["stdin"] != "input" {
		t.Error("masking changed the caller's input")
	}
}

// writeLog logs n records to a new file log and returns its path.
func writeLog(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	l := audit.New(s, nil)
	for i := range n {
		if err := l.Log(t.Context(), audit.Record{DecisionID: fmt.Sprint("d", i), Kind: audit.KindToolCall, Tool: "t", Result: audit.ResultAllow}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return p
}

func readLines(t *testing.T, p string) [][]byte {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))[:bytes.Count(data, []byte("\n"))]
}

// TestVerifyDetectsTampering: each kind of tampering is reported at its
// line.
func TestVerifyDetectsTampering(t *testing.T) {
	p := writeLog(t, 5) // genesis + 5 records: lines 1-6
	res, err := audit.Verify([]string{p})
	if err != nil || res.Records != 6 {
		t.Fatalf("untouched log: %v, %d records", err, res.Records)
	}
	lines := readLines(t, p)
	if !strings.Contains(string(lines[0]), `"kind":"audit_genesis"`) {
		t.Errorf("first line is not a genesis: %s", lines[0])
	}
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	flip := func(l []byte, at int) []byte {
		c := bytes.Clone(l)
		c[at] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name string
		data []byte
		line int
		want string
	}{
		{"deny/changed-byte", join(lines[0], lines[1], flip(lines[2], 30), lines[3], lines[4], lines[5]), 3, "changed"},
		{"deny/changed-hash", join(lines[0], lines[1], flip(lines[2], len(lines[2])-10), lines[3], lines[4], lines[5]), 3, ""},
		{"deny/deleted-line", join(lines[0], lines[1], lines[3], lines[4], lines[5]), 3, "deleted"},
		{"deny/reordered", join(lines[0], lines[1], lines[3], lines[2], lines[4], lines[5]), 3, "reordered"},
		{"deny/torn-tail", join(lines[0], lines[1], lines[2], lines[3], lines[4], lines[5][:40]), 6, "truncated"},
		{"deny/inserted", join(lines[0], lines[1], []byte("{\"forged\":true}\n"), lines[2], lines[3]), 3, "not a chained record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.VerifyReader("audit.log", bytes.NewReader(tc.data))
			var ce *audit.ChainError
			if !errors.As(err, &ce) || ce.Line != tc.line || !strings.Contains(ce.Reason, tc.want) {
				t.Errorf("Verify = %v, want line %d saying %q", err, tc.line, tc.want)
			}
		})
	}
}

// logAfterRestart opens the log at p again, as a restarted server does,
// and logs one record.
func logAfterRestart(t *testing.T, p string) {
	t.Helper()
	s, err := audit.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	l := audit.New(s, nil)
	if err := l.Log(t.Context(), audit.Record{DecisionID: "after", Kind: audit.KindToolCall, Result: audit.ResultAllow}); err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestChainContinuesAfterALongRecord: a last record longer than the
// first look at the file's end is found further back, and the chain goes
// on from it (no torn-tail genesis).
func TestChainContinuesAfterALongRecord(t *testing.T) {
	p := writeLog(t, 2)
	s, err := audit.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{}
	for i := range 12 {
		in[fmt.Sprint("k", i)] = strings.Repeat("x", 3000)
	}
	l := audit.New(s, nil)
	if err := l.Log(t.Context(), audit.Record{DecisionID: "long", Kind: audit.KindValidation, Result: audit.ResultDeny, Input: in}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	lines := readLines(t, p)
	if n := len(lines[len(lines)-1]); n < 20<<10 {
		t.Fatalf("the last record is %d bytes; the test wants one past the first look", n)
	}
	logAfterRestart(t, p)
	lines = readLines(t, p)
	if res, err := audit.Verify([]string{p}); err != nil || res.Records != len(lines) {
		t.Fatalf("Verify: %v, %d records of %d lines", err, res.Records, len(lines))
	}
	for _, line := range lines {
		if strings.Contains(string(line), "audit_genesis") && strings.Contains(string(line), "torn") {
			t.Fatalf("a torn-tail genesis after a whole record: %.200s", line)
		}
	}
}

// TestChainContinuesAcrossRestart: reopening a log continues its chain; a
// torn tail starts a new segment with a genesis saying so.
func TestChainContinuesAcrossRestart(t *testing.T) {
	p := writeLog(t, 2)
	s, err := audit.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	l := audit.New(s, nil)
	l.Log(t.Context(), audit.Record{DecisionID: "again", Kind: audit.KindToolCall, Result: audit.ResultAllow})
	l.Close()
	if res, err := audit.Verify([]string{p}); err != nil || res.Records != 4 {
		t.Fatalf("restarted log: %v, %d records", err, res.Records)
	}

	// A torn tail.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"timestamp":"2026-`)
	f.Close()
	logAfterRestart(t, p)
	lines := readLines(t, p)
	if len(lines) != 7 || !strings.Contains(string(lines[5]), "audit_genesis") || !strings.Contains(string(lines[5]), "torn") {
		t.Fatalf("no genesis after the torn line: %q", lines[4:])
	}
	_, err = audit.Verify([]string{p})
	var ce *audit.ChainError
	if !errors.As(err, &ce) || ce.Line != 5 {
		t.Errorf("Verify = %v, want the torn line 5 reported", err)
	}
	// The new segment verifies on its own.
	if _, err := audit.VerifyReader("tail", bytes.NewReader(bytes.Join(lines[5:], nil))); err != nil {
		t.Errorf("new segment: %v", err)
	}
}

func TestRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.Open(p, &audit.FileOptions{MaxSize: 2000, Retention: 2, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	l := audit.New(s, nil)
	for i := range 40 {
		if err := l.Log(t.Context(), audit.Record{DecisionID: fmt.Sprint("d", i), Kind: audit.KindToolCall, Result: audit.ResultAllow}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	files := []string{p + ".2", p + ".1", p}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 2000 || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes, mode %o", f, st.Size(), st.Mode().Perm())
		}
		if first := readLines(t, f)[0]; !strings.Contains(string(first), "audit_genesis") {
			t.Errorf("%s does not start with a genesis: %s", f, first)
		}
	}
	if _, err := os.Stat(p + ".3"); err == nil {
		t.Error("audit.log.3 kept beyond retention 2")
	}
	if !strings.Contains(string(readLines(t, p)[0]), "audit.log.1") {
		t.Errorf("genesis does not name the previous file: %s", readLines(t, p)[0])
	}
	if _, err := audit.Verify(files); err != nil {
		t.Errorf("chain across rotated files: %v", err)
	}
	// Out of order, the link between files breaks.
	if _, err := audit.Verify([]string{p + ".1", p + ".2", p}); err == nil {
		t.Error("files out of order verified")
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

type discard struct{ n int }

func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// input1KiB is a tool call's input of about 1 KiB of ordinary arguments.
func input1KiB() map[string]any {
	return map[string]any{
		"tool": "create_bug", "protocol_version": "2025-11-25",
		"arguments": map[string]any{
			"title":       "Crash when saving a file with a very long name in the editor",
			"description": strings.Repeat("Steps: open the editor, type a long name, press save. ", 12),
			"labels":      []any{"bug", "editor", "p1"},
			"project":     "/home/dev/src/project",
			"severity":    "high",
		},
	}
}

func BenchmarkLog1KiB(b *testing.B) {
	w := &discard{}
	l := audit.New(audit.NewWriterSink(w), nil)
	rec := audit.Record{DecisionID: audit.NewID(), SessionID: audit.NewID(), RequestID: "12", Kind: audit.KindToolCall,
		Tool: "create_bug", Client: &audit.Client{Name: "claude-code", Version: "2.0.1"}, Result: audit.ResultAllow,
		Path: "mcp/tools/decision", Input: input1KiB()}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Log(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.n)/float64(b.N), "bytes/record")
}

func BenchmarkLogToolName1MB(b *testing.B) {
	w := &discard{}
	l := audit.New(audit.NewWriterSink(w), nil)
	name := strings.Repeat("A", 1<<20)
	rec := audit.Record{DecisionID: audit.NewID(), Kind: audit.KindValidation, Tool: name, Result: audit.ResultDeny,
		Reasons: []string{fmt.Sprintf("tool %q is not registered", name)}, Input: map[string]any{"tool": name}}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Log(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.n)/float64(b.N), "bytes/record")
}

// BenchmarkReferenceJSONMarshal1KiB is the cost of a plain json.Marshal
// of BenchmarkLog1KiB's input on the same machine, to read the Log
// figure against.
func BenchmarkReferenceJSONMarshal1KiB(b *testing.B) {
	in := input1KiB()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTwoWritersKeepOneChain: two servers appending to one log (two
// clients on the default policy) take turns under a file lock, and each
// continues the chain from the other's last record.
func TestTwoWritersKeepOneChain(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	loggers := openWriters(t, p, nil)
	var wg sync.WaitGroup
	for i, l := range loggers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				rec := audit.Record{DecisionID: fmt.Sprintf("w%d-%d", i, j), Kind: audit.KindToolCall, Result: audit.ResultAllow}
				if err := l.Log(t.Context(), rec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	res, err := audit.Verify([]string{p})
	if err != nil {
		t.Fatalf("the interleaved log does not verify: %v", err)
	}
	if res.Records < 100 {
		t.Errorf("%d records, want the 100 written (and the genesis)", res.Records)
	}
}

// TestVerifyNeedsTheStart: a log whose first records were cut away does
// not verify as a whole log.
func TestVerifyNeedsTheStart(t *testing.T) {
	p := writeLog(t, 4)
	lines := readLines(t, p)
	cut := filepath.Join(t.TempDir(), "cut.log")
	if err := os.WriteFile(cut, bytes.Join(lines[2:], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := audit.Verify([]string{cut})
	var ce *audit.ChainError
	if !errors.As(err, &ce) || ce.Line != 1 || !strings.Contains(ce.Error(), "genesis") {
		t.Errorf("Verify of a log without its start = %v", err)
	}
	if _, err := audit.Verify([]string{p}); err != nil {
		t.Errorf("the whole log: %v", err)
	}
}

// TestTwoWritersRotate: when one of two servers on one log rotates it,
// the other follows into the new file instead of failing closed, and the
// rotated files still form one chain.
func TestTwoWritersRotate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	loggers := openWriters(t, p, &audit.FileOptions{MaxSize: 4 << 10, Retention: 100})
	var wg sync.WaitGroup
	for i, l := range loggers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 60 {
				rec := audit.Record{DecisionID: fmt.Sprintf("w%d-%d", i, j), Kind: audit.KindToolCall, Result: audit.ResultAllow,
					Input: map[string]any{"pad": strings.Repeat("x", 200)}}
				if err := l.Log(t.Context(), rec); err != nil {
					t.Errorf("writer %d, record %d: %v", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var files []string
	for n := 100; n >= 1; n-- {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", p, n)); err == nil {
			files = append(files, fmt.Sprintf("%s.%d", p, n))
		}
	}
	if len(files) < 2 {
		t.Fatalf("only %d rotations", len(files))
	}
	files = append(files, p)
	res, err := audit.Verify(files)
	if err != nil {
		t.Fatalf("the rotated log does not verify: %v", err)
	}
	if res.Records < 120 {
		t.Errorf("%d records, want the 120 written", res.Records)
	}
}

// openWriters opens two loggers on one log file, as two servers would.
func openWriters(t *testing.T, p string, opts *audit.FileOptions) []*audit.Logger {
	t.Helper()
	var loggers []*audit.Logger
	for range 2 {
		s, err := audit.Open(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		l := audit.New(s, nil)
		t.Cleanup(func() { l.Close() })
		loggers = append(loggers, l)
	}
	return loggers
}
