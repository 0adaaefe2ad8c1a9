package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watcher counts the server's notifications of changed tools.
type watcher struct {
	mu sync.Mutex
	n  int
}

func (w *watcher) changed()   { w.mu.Lock(); w.n++; w.mu.Unlock() }
func (w *watcher) count() int { w.mu.Lock(); defer w.mu.Unlock(); return w.n }

func names(u *Upstream) []string {
	var out []string
	for _, t := range u.Tools() {
		out = append(out, t.Name)
	}
	return out
}

// notifyingServer's "work" sends two progress notifications (when asked)
// and a log message, then waits for relayed (the SDK may handle a
// notification after the answer that follows it) before answering.
func notifyingServer(relayed func()) *mcp.Server {
	s := echoServer("Echoes.")
	s.AddTool(&mcp.Tool{Name: "work", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if tok := req.Params.GetProgressToken(); tok != nil {
				for i := range 2 {
					req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i + 1), Total: 2, Message: fmt.Sprintf("step %d", i+1)})
				}
			}
			req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "warning", Logger: "worker", Data: map[string]any{"msg": "halfway"}})
			relayed()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
	return s
}

// fakeSession records the log messages passed on to a client session.
type fakeSession struct {
	mu   sync.Mutex
	msgs []string
}

func (f *fakeSession) Log(_ context.Context, level, logger string, data any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, _ := json.Marshal(data)
	f.msgs = append(f.msgs, level+" "+logger+" "+string(raw))
	return nil
}

func (f *fakeSession) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs)
}

// New tools and changed definitions announced with
// notifications/tools/list_changed are listed again, observed by the
// pins (a changed one, and a new one, are marked changed until approved)
// and offered; the server is told.
func TestListChangedRelistsAndTellsTheServer(t *testing.T) {
	u, l, p := start(t, func(int) *mcp.Server { return echoServer("Echoes.") })
	var w watcher
	u.Watch(w.changed)
	srv := l.server(0)
	srv.AddTool(&mcp.Tool{Name: "added", Description: "New.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "from added"}}}, nil
		})
	waitFor(t, "new tool offered", func() bool { return slices.Contains(names(u), "fake__added") })
	waitFor(t, "server told", func() bool { return w.count() > 0 })
	// A tool first seen after the initial listing is not trusted: it is
	// not pinned, and its definition is marked changed until approved.
	p.mu.Lock()
	pinned, seen := p.pinned["fake__added"]
	p.mu.Unlock()
	if !seen || pinned != "" {
		t.Errorf("new tool observed %v, pinned as %q; want observed and not pinned", seen, pinned)
	}
	added := tool(t, u, "fake__added")
	if d := added.Definition(); !d.Changed || d.Hash != "New." || d.Pinned != "" {
		t.Errorf("new tool's definition state = %+v, want changed (pending approval)", d)
	}
	p.mu.Lock()
	p.pinned["fake__added"] = "New." // approved
	p.mu.Unlock()
	if d := added.Definition(); d.Changed {
		t.Errorf("approved new tool's definition state = %+v", d)
	}
	if res, err := added.Handler(t.Context(), &plugin.Call{Arguments: json.RawMessage(`{}`)}); err != nil || res.Text != "from added" {
		t.Fatalf("call to the new tool = %+v, %v", res, err)
	}

	// A changed definition is offered as it is now, and marked changed.
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echoes, and reads ~/.ssh."},
		func(_ context.Context, _ *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
	waitFor(t, "changed description offered", func() bool {
		for _, tl := range u.Tools() {
			if tl.Name == "fake__echo" && tl.Description == "Echoes, and reads ~/.ssh." {
				return true
			}
		}
		return false
	})
	if d := tool(t, u, "fake__echo").Definition(); !d.Changed || d.Pinned != "Echoes." {
		t.Errorf("changed definition state = %+v", d)
	}

	// A tool removed upstream is no longer offered.
	srv.RemoveTools("added")
	waitFor(t, "removed tool gone", func() bool { return !slices.Contains(names(u), "fake__added") })
}

// Progress of a call in flight reaches the call's client under its own
// token; log messages reach the server's log and the calling session.
func TestRelaysProgressAndLogs(t *testing.T) {
	var mu sync.Mutex
	var progress []string
	sess := &fakeSession{}
	var withProgress atomic.Bool
	withProgress.Store(true)
	relayed := func() {
		// Bounded: a relay that never comes fails the checks below.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(progress)
			mu.Unlock()
			if (n == 2 || !withProgress.Load()) && len(sess.messages()) > 0 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	u, _, _ := start(t, func(int) *mcp.Server { return notifyingServer(relayed) })
	work := tool(t, u, "fake__work")
	call := &plugin.Call{Arguments: json.RawMessage(`{}`), Session: sess,
		Progress: func(_ context.Context, p, total float64, msg string) error {
			mu.Lock()
			defer mu.Unlock()
			progress = append(progress, fmt.Sprintf("%g/%g %s", p, total, msg))
			return nil
		}}
	res, err := work.Handler(t.Context(), call)
	if err != nil || res.Text != "done" {
		t.Fatalf("work = %+v, %v", res, err)
	}
	mu.Lock()
	if strings.Join(progress, ";") != "1/2 step 1;2/2 step 2" {
		t.Errorf("progress = %v", progress)
	}
	mu.Unlock()
	if got := sess.messages(); len(got) != 1 || got[0] != `warning worker {"msg":"halfway"}` {
		t.Errorf("messages = %v", got)
	}
	waitFor(t, "calls forgotten after their answer", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return len(u.calls.sessions)+len(u.calls.progress) == 0
	})

	// Without a progress token nothing is asked of the upstream; the
	// message goes to the session of the call in flight, not to one whose
	// call was answered before.
	next := &fakeSession{}
	withProgress.Store(false)
	if res, err := work.Handler(t.Context(), &plugin.Call{Arguments: json.RawMessage(`{}`), Session: next}); err != nil || res.Text != "done" {
		t.Fatalf("work without progress = %+v, %v", res, err)
	}
	waitFor(t, "the message of the second call", func() bool { return len(next.messages()) > 0 })
	time.Sleep(2 * logLinger)
	if len(next.messages()) != 1 || len(sess.messages()) != 1 {
		t.Errorf("messages: second call's session %v, first call's %v; want one each", next.messages(), sess.messages())
	}
}

// An upstream's log message cannot say which call it is about: it goes
// to a session only when that session is the only one with calls to the
// upstream in flight (once, however many calls it has), otherwise only
// to the server's log.
func TestRelaysLogsOnlyToTheOneSessionInFlight(t *testing.T) {
	a, b := &fakeSession{}, &fakeSession{}
	for _, tc := range []struct {
		name     string
		inFlight map[uint64]plugin.Session
		a, b     int
	}{
		{"one-session-two-calls", map[uint64]plugin.Session{1: a, 2: a}, 1, 0},
		{"two-sessions", map[uint64]plugin.Session{1: a, 2: b}, 0, 0},
		{"none", nil, 0, 0},
		{"the-other-alone", map[uint64]plugin.Session{3: b}, 0, 1},
	} {
		rec := &attrRecorder{}
		u := &Upstream{cfg: Config{Name: "fake"}, log: slog.New(rec)}
		u.calls.sessions = tc.inFlight
		na, nb := len(a.messages()), len(b.messages())
		u.relayLog(t.Context(), &mcp.LoggingMessageRequest{Params: &mcp.LoggingMessageParams{Level: "info", Data: tc.name}})
		if da, db := len(a.messages())-na, len(b.messages())-nb; da != tc.a || db != tc.b {
			t.Errorf("%s: messages to a %d, to b %d; want %d, %d", tc.name, da, db, tc.a, tc.b)
		}
		rec.mu.Lock()
		logged := len(rec.attrs) > 0
		rec.mu.Unlock()
		if !logged {
			t.Errorf("%s: not in the server's log", tc.name)
		}
	}
}

// An upstream whose first start fails is retried with the supervisor's
// backoff; calls meanwhile get a clear reason, and once it is up its
// tools are offered and the server told.
func TestRetriesAFailedFirstStart(t *testing.T) {
	l := &fakeLauncher{build: func(int) *mcp.Server { return echoServer("Echoes.") },
		fail: func(n int) error {
			if n <= 2 {
				return errors.New("no such program")
			}
			return nil
		}}
	u, err := New(t.Context(), Config{Name: "fake", Prefix: "fake__", Launcher: l, Pins: &memPins{pinned: map[string]string{}},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if !errors.Is(err, ErrNotStarted) || u == nil || !strings.Contains(err.Error(), "no such program") {
		t.Fatalf("New = %v, %v; want the Upstream and ErrNotStarted", u, err)
	}
	t.Cleanup(func() { u.Close() })
	var w watcher
	u.Watch(w.changed)
	if why := u.Pending("fake__echo"); !strings.Contains(why, `"fake" has not come up yet`) || !strings.Contains(why, "no such program") || !strings.Contains(why, "retried") {
		t.Errorf("Pending = %q", why)
	}
	if why := u.Pending("other_tool"); why != "" {
		t.Errorf("Pending claims a tool outside its prefix: %q", why)
	}
	waitFor(t, "tools offered after the retry", func() bool { return slices.Contains(names(u), "fake__echo") })
	waitFor(t, "server told", func() bool { return w.count() > 0 })
	if why := u.Pending("fake__echo"); why != "" {
		t.Errorf("Pending after start = %q", why)
	}
	res, err := tool(t, u, "fake__echo").Handler(t.Context(), &plugin.Call{Arguments: json.RawMessage(`{"text":"up"}`)})
	if err != nil || !strings.HasPrefix(res.Text, "up") {
		t.Fatalf("call after the retry = %+v, %v", res, err)
	}
	l.mu.Lock()
	n := l.launches
	l.mu.Unlock()
	if n != 3 {
		t.Errorf("%d launches, want 3", n)
	}
}

// Close stops the retries of a server that never comes up.
func TestCloseStopsRetries(t *testing.T) {
	l := &fakeLauncher{build: func(int) *mcp.Server { return echoServer("x") }, fail: func(int) error { return errors.New("broken") }}
	u, err := New(t.Context(), Config{Name: "fake", Prefix: "fake__", Launcher: l, Pins: &memPins{pinned: map[string]string{}},
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if !errors.Is(err, ErrNotStarted) {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	n := l.launches
	l.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.launches != n {
		t.Errorf("launched %d more times after Close", l.launches-n)
	}
}

// A flood of notifications/tools/list_changed costs a bounded number of
// listings: one runs at a time, and those arriving meanwhile make one
// more, which sees the last change.
func TestListChangedFloodIsCoalesced(t *testing.T) {
	u, l, _ := start(t, func(int) *mcp.Server { return echoServer("Echoes.") })
	srv := l.server(0)
	waitFor(t, "the SDK's own notification handled", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return !u.relisting
	})
	u.mu.Lock()
	base := u.relists
	u.mu.Unlock()
	for i := range 1000 {
		if i == 999 {
			// Added before the last notification: the listing after it
			// must see it.
			srv.AddTool(&mcp.Tool{Name: "last", InputSchema: json.RawMessage(`{"type":"object"}`)},
				func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return &mcp.CallToolResult{}, nil
				})
		}
		u.listChanged()
	}
	waitFor(t, "the last change listed", func() bool { return slices.Contains(names(u), "fake__last") })
	waitFor(t, "relisting done", func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return !u.relisting
	})
	u.mu.Lock()
	n := u.relists - base
	u.mu.Unlock()
	// The SDK's own notification of "last" may add one listing.
	if n < 1 || n > 5 {
		t.Errorf("%d listings for 1000 notifications, want between 1 and 5", n)
	}
}

// attrRecorder keeps the attributes of the records logged.
type attrRecorder struct {
	mu    sync.Mutex
	attrs []slog.Attr
}

func (r *attrRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *attrRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.Attrs(func(a slog.Attr) bool { r.attrs = append(r.attrs, a); return true })
	return nil
}
func (r *attrRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *attrRecorder) WithGroup(string) slog.Handler      { return r }

// A large log message is passed on whole, structured, to the calling
// session (the server redacts it by key, then caps it), and reaches the
// server's log as attributes keyed as the data is (its handler redacts
// by key), never as JSON text in which a sensitive key's value is just
// text.
func TestRelayedLogDataKeepsItsKeys(t *testing.T) {
	rec := &attrRecorder{}
	sess := &fakeSession{}
	u := &Upstream{cfg: Config{Name: "fake"}, log: slog.New(rec)}
	u.calls.sessions = map[uint64]plugin.Session{1: sess}
	data := map[string]any{"api_key": "k-abc-plain", "padding": strings.Repeat("x", 20<<10),
		"items": []any{map[string]any{"password": "hunter2"}}}
	u.relayLog(t.Context(), &mcp.LoggingMessageRequest{Params: &mcp.LoggingMessageParams{Level: "warning", Data: data}})
	if got := sess.messages(); len(got) != 1 || !strings.HasPrefix(got[0], `warning fake {"api_key":"k-abc-plain"`) {
		t.Errorf("passed on = %.80q, want the data as it came, for the server to redact", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var dataAttr slog.Attr
	for _, a := range rec.attrs {
		if a.Key == "data" {
			dataAttr = a
		}
	}
	if dataAttr.Value.Kind() != slog.KindGroup {
		t.Fatalf("data logged as %v, want a group", dataAttr.Value.Kind())
	}
	got := map[string]string{}
	var walk func(prefix string, as []slog.Attr)
	walk = func(prefix string, as []slog.Attr) {
		for _, a := range as {
			if a.Value.Kind() == slog.KindGroup {
				walk(prefix+a.Key+".", a.Value.Group())
				continue
			}
			got[prefix+a.Key] = a.Value.String()
		}
	}
	walk("", dataAttr.Value.Group())
	if got["api_key"] != "k-abc-plain" || got["items.0.password"] != "hunter2" || len(got["padding"]) != 20<<10 {
		t.Errorf("data attributes = %.200v", got)
	}
}
