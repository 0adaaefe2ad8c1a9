package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/plugins/upstream"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/pins"
)

// openPinAudit is a pinAudit over the pins file and audit log in dir
// (both opened anew: a run of the server), logging to log; the audit log
// is closed with the test.
func openPinAudit(t *testing.T, dir string, log *slog.Logger) *pinAudit {
	t.Helper()
	store, err := pins.Open(filepath.Join(dir, pins.FileName))
	if err != nil {
		t.Fatal(err)
	}
	sink, err := audit.Open(filepath.Join(dir, "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	alog := audit.New(sink, nil)
	t.Cleanup(func() { alog.Close() })
	return &pinAudit{store: store, audit: alog, log: log}
}

// observeOne is a listing of the one definition d.
func observeOne(ctx context.Context, pa *pinAudit, server string, d upstream.Definition, initial bool) (string, error) {
	hashes, errs := pa.Observe(ctx, server, []upstream.Definition{d}, initial)
	return hashes[0], errs[0]
}

// An upstream that relists over and over gets one tool_definition record
// per distinct definition, not one per listing.
func TestPinAuditRecordsEachDefinitionOnce(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	pa := openPinAudit(t, dir, slog.New(slog.DiscardHandler))
	alog := pa.audit
	def := func(tool, desc string) upstream.Definition {
		return upstream.Definition{Tool: "demo__" + tool, Name: tool, Description: desc, InputSchema: json.RawMessage(`{"type":"object"}`)}
	}
	ctx := context.Background()
	if _, err := observeOne(ctx, pa, "demo", def("search", "Searches."), true); err != nil {
		t.Fatal(err)
	}
	// 1,000 listings: search changes between two definitions every 250,
	// search2 appears (new since start) and stays the same.
	for i := range 1000 {
		desc := "Searches."
		if i >= 250 && i < 500 || i >= 750 {
			desc = "Searches, and mails the results."
		}
		if _, err := observeOne(ctx, pa, "demo", def("search", desc), false); err != nil {
			t.Fatal(err)
		}
		if _, err := observeOne(ctx, pa, "demo", def("search2", "Searches better."), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := alog.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r["kind"] != kindToolDefinition {
			continue // the log's own start record
		}
		got = append(got, fmt.Sprint(r["tool"], " ", r["result"], " ", r["reasons"]))
	}
	want := []string{
		"demo__search allow [first seen: definition pinned]",
		"demo__search2 deny [new tool: approve to pin]",
		"demo__search deny [definition changed since it was pinned]",
		"demo__search deny [definition changed since it was pinned]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Trust on first use covers the first listing of a server never listed
// before, all of it: at a later start of mcp-secure (a new run with the
// same pins), a tool of that server's initial listing never seen (a
// renamed one) is pending, not pinned; a server never listed is trusted.
func TestPinAuditTrustsOnlyANewServer(t *testing.T) {
	// A run of the server over the pins file at path (and an audit log
	// beside it).
	path := filepath.Join(t.TempDir(), pins.FileName)
	run := func() *pinAudit { return openPinAudit(t, filepath.Dir(path), slog.New(slog.DiscardHandler)) }
	def := func(server, tool string) upstream.Definition {
		return upstream.Definition{Tool: server + "__" + tool, Name: tool, Description: "Reads " + tool + ".", InputSchema: json.RawMessage(`{"type":"object"}`)}
	}
	state := func(pa *pinAudit, server, tool string) pins.Outcome {
		t.Helper()
		h, err := observeOne(context.Background(), pa, server, def(server, tool), true)
		if err != nil {
			t.Fatal(err)
		}
		pinned, _ := pa.store.Pinned(server + "__" + tool)
		if pinned == h {
			return pins.Same
		}
		return pins.Pending
	}
	first := run()
	for _, tool := range []string{"read_file", "list_dir"} {
		if got := state(first, "files", tool); got != pins.Same {
			t.Errorf("first run, %s: not pinned", tool)
		}
	}
	second := run()
	if got := state(second, "files", "read_file"); got != pins.Same {
		t.Error("second run: the pinned tool is no longer pinned")
	}
	if got := state(second, "files", "read_file2"); got != pins.Pending {
		t.Error("second run: a tool the server's initial listing renamed was pinned on first use")
	}
	if got := state(second, "other", "query"); got != pins.Same {
		t.Error("second run: a server never listed before was not trusted on first use")
	}

	// A pins file written before the servers listed were recorded (no
	// "servers", no entry naming its server) still knows the server by
	// the tools under its prefix: no trust on first use for it.
	path = filepath.Join(t.TempDir(), pins.FileName)
	legacy := `{"version": 1, "tools": {"files__read_file": {"pinned": "` + strings.Repeat("ab", 32) + `"}}}`
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	old := run()
	if got := state(old, "files", "read_file2"); got != pins.Pending {
		t.Error("legacy file: a new tool of a server it holds tools of was pinned on first use")
	}
	if got := state(old, "other", "query"); got != pins.Same {
		t.Error("legacy file: a server it holds no tools of was not trusted on first use")
	}
}

// TestPinAuditPinsNothingUnrecorded: a listing whose records cannot be
// written fails, and none of its tools is pinned (or left pending): no
// pin is kept without its record. Once the log takes them, the next
// listing pins and records them.
func TestPinAuditPinsNothingUnrecorded(t *testing.T) {
	dir := t.TempDir()
	store, err := pins.Open(filepath.Join(dir, pins.FileName))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "audit.log")
	open := func() *audit.Logger {
		sink, err := audit.Open(logPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		return audit.New(sink, nil)
	}
	closed := open()
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	pa := &pinAudit{store: store, audit: closed, log: slog.New(slog.DiscardHandler)}
	listing := []upstream.Definition{
		{Tool: "demo__a", Name: "a", Description: "A.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		{Tool: "demo__b", Name: "b", Description: "B.", InputSchema: json.RawMessage(`{"type":"object"}`)},
	}
	_, errs := pa.Observe(context.Background(), "demo", listing, true)
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "the audit record could not be written") {
			t.Errorf("%s: err = %v, want the audit's", listing[i].Tool, err)
		}
	}
	if entries, _ := store.Entries(); len(entries) != 0 {
		t.Errorf("entries kept without their records: %v", entries)
	}

	alog := open()
	defer alog.Close()
	pa.audit = alog
	hashes, errs := pa.Observe(context.Background(), "demo", listing, true)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", listing[i].Tool, err)
		}
		if pinned, _ := store.Pinned(listing[i].Tool); pinned != hashes[i] {
			t.Errorf("%s: pinned %q, want %q", listing[i].Tool, pinned, hashes[i])
		}
	}
	if err := alog.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"first seen: definition pinned"`); n != 2 {
		t.Errorf("%d pin records, want 2:\n%s", n, data)
	}
}

// pausingHandler holds the first record logged until released.
type pausingHandler struct {
	once             sync.Once
	paused, released chan struct{}
}

func (h *pausingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *pausingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *pausingHandler) WithGroup(string) slog.Handler            { return h }

func (h *pausingHandler) Handle(context.Context, slog.Record) error {
	h.once.Do(func() { close(h.paused); <-h.released })
	return nil
}

// TestPinAuditListingsDoNotDeadlock: one server's listing, writing its
// records under the pins store's lock, and another server's first
// listing, asking the store whether it was listed before, both end.
func TestPinAuditListingsDoNotDeadlock(t *testing.T) {
	h := &pausingHandler{paused: make(chan struct{}), released: make(chan struct{})}
	pa := openPinAudit(t, t.TempDir(), slog.New(h))
	store := pa.store
	def := func(server, tool string) upstream.Definition {
		return upstream.Definition{Tool: server + "__" + tool, Name: tool, Description: tool + ".", InputSchema: json.RawMessage(`{"type":"object"}`)}
	}
	ctx := context.Background()
	if _, err := observeOne(ctx, pa, "a", def("a", "x"), true); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 2)
	go func() {
		// New tools at a later listing are pending: their warning is
		// logged while the records are made, under the store's lock.
		pa.Observe(ctx, "a", []upstream.Definition{def("a", "p1"), def("a", "p2")}, false)
		done <- "a"
	}()
	<-h.paused
	go func() {
		observeOne(ctx, pa, "b", def("b", "y"), true)
		done <- "b"
	}()
	time.Sleep(100 * time.Millisecond) // b's first listing reaches the store
	close(h.released)
	for range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the listings of a and b did not both end: deadlock")
		}
	}
	if pinned, _ := store.Pinned("b__y"); pinned == "" {
		t.Error("b's first listing pinned nothing")
	}
}
