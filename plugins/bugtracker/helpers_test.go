package bugtracker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/plugin/plugintest"
)

// env is a tracker on a test host: an allowed workspace with two project
// directories, a directory outside it, and a server data directory.
type env struct {
	t         *testing.T
	tr        *tracker
	host      *plugintest.Host
	tools     map[string]plugin.Tool
	workspace string
	p1, p2    string // project directories in the workspace
	outside   string // a directory the filesystem door refuses
	opts      storeOptions
}

func realDir(t testing.TB, dir string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

func mkdir(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newEnv builds a tracker; opts adjust the store before it is built.
func newEnv(t *testing.T, opts ...func(*storeOptions)) *env {
	t.Helper()
	root := realDir(t, t.TempDir())
	e := &env{
		t:         t,
		workspace: mkdir(t, filepath.Join(root, "ws")),
		outside:   mkdir(t, filepath.Join(root, "outside")),
		opts:      defaultStoreOptions(),
	}
	e.p1 = mkdir(t, filepath.Join(e.workspace, "alpha"))
	e.p2 = mkdir(t, filepath.Join(e.workspace, "beta"))
	e.opts.busyTimeout = time.Second
	for _, o := range opts {
		o(&e.opts)
	}
	e.host = &plugintest.Host{
		FS:   plugintest.DirFiles{Roots: []string{e.workspace}},
		Data: mkdir(t, filepath.Join(root, "data")),
	}
	e.restart()
	return e
}

// restart closes the tracker, if any, and builds a new one on the same
// host: what a server restart does.
func (e *env) restart() {
	e.t.Helper()
	if e.tr != nil {
		if err := e.tr.close(); err != nil {
			e.t.Fatalf("close: %v", err)
		}
	}
	tr, err := newTracker(e.host, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	tr.now = fakeClock()
	e.tr = tr
	e.tools = map[string]plugin.Tool{}
	for _, tool := range tr.Tools() {
		e.tools[tool.Name] = tool
	}
	e.t.Cleanup(func() { tr.close() })
}

// fakeClock starts at 2026-03-01T10:00:00Z and moves one second per
// reading.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

// callCtx runs a tool's handler and returns what it returned.
func (e *env) callCtx(ctx context.Context, tool string, args any) (*plugin.Result, error) {
	e.t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		e.t.Fatal(err)
	}
	h, ok := e.tools[tool]
	if !ok {
		e.t.Fatalf("no tool %q", tool)
	}
	return h.Handler(ctx, &plugin.Call{Tool: tool, Arguments: raw})
}

// call runs a tool and fails the test on a Go error (an error result is
// returned for the test to check).
func (e *env) call(tool string, args any) *plugin.Result {
	e.t.Helper()
	res, err := e.callCtx(e.t.Context(), tool, args)
	if err != nil {
		e.t.Fatalf("%s(%v): error %v", tool, args, err)
	}
	if res == nil {
		e.t.Fatalf("%s(%v): nil result", tool, args)
	}
	return res
}

// ok runs a tool that must succeed.
func (e *env) ok(tool string, args any) *plugin.Result {
	e.t.Helper()
	res := e.call(tool, args)
	if res.IsError {
		e.t.Fatalf("%s(%v): error result %q", tool, args, res.Text)
	}
	return res
}

func (e *env) add(project, title string, more map[string]any) *Bug {
	e.t.Helper()
	args := map[string]any{"title": title, "project_path": project}
	for k, v := range more {
		args[k] = v
	}
	return e.ok("add_bug", args).Structured.(*Bug)
}

func (e *env) get(project, id string) *Bug {
	e.t.Helper()
	return e.ok("get_bug", map[string]any{"bug_id": id, "project_path": project}).Structured.(*Bug)
}

func (e *env) dbPath() string {
	return filepath.Join(e.host.Data, Name, DatabaseFile)
}

func ids(bugs []Summary) []string {
	out := make([]string, len(bugs))
	for i, b := range bugs {
		out[i] = b.ID
	}
	return out
}

// contextCancelled returns a context that is already cancelled.
func contextCancelled(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx, cancel
}
