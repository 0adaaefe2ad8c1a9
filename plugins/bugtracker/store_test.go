package bugtracker

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// rawDB opens the database file directly, as another process would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, storeOptions{busyTimeout: time.Second}, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func versions(t *testing.T, path string) []int {
	t.Helper()
	db := rawDB(t, path)
	rows, err := db.QueryContext(t.Context(), "SELECT version FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		rows.Scan(&v)
		out = append(out, v)
	}
	db.Close()
	return out
}

func TestConcurrentAddBug(t *testing.T) {
	e := newEnv(t)
	// A second tracker on the same file stands in for a second server
	// process: its writes meet the first one's at SQLite's lock.
	second, err := newTracker(e.host, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.close() })
	handlers := map[*tracker]plugin.Handler{}
	for _, tr := range []*tracker{e.tr, second} {
		for _, tool := range tr.Tools() {
			if tool.Name == "add_bug" {
				handlers[tr] = tool.Handler
			}
		}
	}

	const n = 50
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		h := handlers[e.tr]
		if i%2 == 1 {
			h = handlers[second]
		}
		wg.Go(func() {
			args := fmt.Appendf(nil, `{"title": "parallel %d", "project_path": %q, "tags": ["load"]}`, i, e.p1)
			res, err := h(t.Context(), &plugin.Call{Tool: "add_bug", Arguments: args})
			if err != nil || res.IsError {
				t.Errorf("add_bug %d: %v %+v", i, err, res)
				return
			}
			got[i] = res.Structured.(*Bug).ID
		})
	}
	wg.Wait()
	slices.Sort(got)
	want := make([]string, n)
	for i := range want {
		want[i] = formatID(int64(i + 1))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("ids are not unique and gapless (-want +got):\n%s", diff)
	}
	if b := e.add(e.p1, "after the burst", nil); b.ID != "BUG-051" {
		t.Errorf("next id = %s", b.ID)
	}
}

func TestRestartPersistence(t *testing.T) {
	e := newEnv(t)
	e.add(e.p1, "survives", map[string]any{"tags": []string{"keep"}, "description": "written before the restart"})
	e.add(e.p1, "second", nil)
	e.ok("update_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001", "status": "in_progress", "note": "halfway",
		"related_bugs": []map[string]any{{"bug_id": "BUG-002", "relationship": "blocks"}}})
	before := e.get(e.p1, "BUG-001")

	e.restart()
	if diff := cmp.Diff(before, e.get(e.p1, "BUG-001")); diff != "" {
		t.Errorf("after restart (-before +after):\n%s", diff)
	}
	if b := e.add(e.p1, "third", nil); b.ID != "BUG-003" {
		t.Errorf("id after restart = %s, want BUG-003", b.ID)
	}
	var mode string
	if err := rawDB(t, e.dbPath()).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	for _, f := range []string{e.dbPath(), e.dbPath() + "-wal", e.dbPath() + "-shm"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", filepath.Base(f), fi, err)
		}
	}
}

func TestMigration(t *testing.T) {
	t.Run("allow/empty-file", func(t *testing.T) {
		e := newEnv(t)
		mkdir(t, filepath.Dir(e.dbPath()))
		if err := os.WriteFile(e.dbPath(), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		res := e.ok("init_bugtracker", map[string]any{"project_path": e.p1}).Structured.(*InitResult)
		if res.SchemaVersion != 2 {
			t.Errorf("schema version %d", res.SchemaVersion)
		}
		e.tr.close()
		if diff := cmp.Diff([]int{1, 2}, versions(t, e.dbPath())); diff != "" {
			t.Errorf("schema_version rows (-want +got):\n%s", diff)
		}
	})

	t.Run("allow/from-v1", func(t *testing.T) {
		e := newEnv(t)
		e.tr.close()
		mkdir(t, filepath.Dir(e.dbPath()))
		db := rawDB(t, e.dbPath())
		if v, err := migrate(t.Context(), db, 1); err != nil || v != 1 {
			t.Fatalf("migrate to v1: %d %v", v, err)
		}
		// Data as a v1 server wrote it: two bugs, one with a tag and a
		// noted history entry.
		for _, stmt := range []string{
			fmt.Sprintf(`INSERT INTO projects (id, path, next_seq, created_at) VALUES (1, %q, 3, '2025-01-01T00:00:00Z')`, e.p1),
			`INSERT INTO bugs (id, project_id, seq, title, description, created_at, updated_at) VALUES
				(1, 1, 1, 'Old crash', 'from the first schema', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z'),
				(2, 1, 2, 'Old typo', '', '2025-01-02T00:00:00Z', '2025-01-02T00:00:00Z')`,
			`INSERT INTO bug_tags (bug_id, project_id, tag) VALUES (1, 1, 'legacy')`,
			`INSERT INTO bug_history (bug_id, at, changes, note) VALUES (1, '2025-01-03T00:00:00Z', '{"priority":["medium","high"]}', 'escalated by support')`,
		} {
			if _, err := db.ExecContext(t.Context(), stmt); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()

		e.restart()
		b := e.get(e.p1, "BUG-001")
		if b.Title != "Old crash" || len(b.History) != 1 || b.History[0].Note != "escalated by support" || !slices.Equal(b.Tags, []string{"legacy"}) {
			t.Errorf("v1 bug after migration = %+v", b)
		}
		// The v2 search index was filled from the v1 rows.
		page := e.ok("search_bugs_global", map[string]any{"query": "support escalated"}).Structured.(*Page)
		if diff := cmp.Diff([]string{"BUG-001"}, ids(page.Bugs)); diff != "" {
			t.Errorf("search after migration (-want +got):\n%s", diff)
		}
		if nb := e.add(e.p1, "new", nil); nb.ID != "BUG-003" {
			t.Errorf("next id after migration = %s", nb.ID)
		}
		e.tr.close()
		if diff := cmp.Diff([]int{1, 2}, versions(t, e.dbPath())); diff != "" {
			t.Errorf("schema_version rows (-want +got):\n%s", diff)
		}
	})

	t.Run("deny/newer-schema", func(t *testing.T) {
		e := newEnv(t)
		e.add(e.p1, "x", nil)
		e.tr.close()
		db := rawDB(t, e.dbPath())
		if _, err := db.Exec(`INSERT INTO schema_version (version, applied_at) VALUES (3, 'later')`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		e.restart()
		res := e.call("get_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001"})
		if !res.IsError || !strings.Contains(res.Text, "newer version") || !strings.Contains(res.Text, "left untouched") {
			t.Errorf("newer schema: %q", res.Text)
		}
		if diff := cmp.Diff([]int{1, 2, 3}, versions(t, e.dbPath())); diff != "" {
			t.Errorf("schema_version rows changed (-want +got):\n%s", diff)
		}
	})

	t.Run("deny/foreign-database", func(t *testing.T) {
		e := newEnv(t)
		e.tr.close()
		mkdir(t, filepath.Dir(e.dbPath()))
		db := rawDB(t, e.dbPath())
		if _, err := db.Exec(`CREATE TABLE notes (body TEXT)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		e.restart()
		res := e.call("init_bugtracker", map[string]any{"project_path": e.p1})
		if !res.IsError || !strings.Contains(res.Text, "not a bug tracker database") {
			t.Errorf("foreign database: %q", res.Text)
		}
	})
}

// TestDatabaseFailures checks that a database that cannot be used gives
// error results, leaves the file as it was, and that the tracker keeps
// serving once the problem is gone.
func TestDatabaseFailures(t *testing.T) {
	t.Run("deny/corrupt-file", func(t *testing.T) {
		e := newEnv(t)
		mkdir(t, filepath.Dir(e.dbPath()))
		garbage := bytes.Repeat([]byte("this is not a database "), 400)
		if err := os.WriteFile(e.dbPath(), garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		for range 2 { // and again: the tracker keeps answering
			res := e.call("add_bug", map[string]any{"project_path": e.p1, "title": "x"})
			if !res.IsError || !strings.Contains(res.Text, "corrupt or not a SQLite database") || !strings.Contains(res.Text, e.dbPath()) {
				t.Fatalf("corrupt file: %q", res.Text)
			}
		}
		if got, _ := os.ReadFile(e.dbPath()); !bytes.Equal(got, garbage) {
			t.Error("the corrupt file was modified")
		}
		// Once the file is replaced, the same tracker works.
		if err := os.Remove(e.dbPath()); err != nil {
			t.Fatal(err)
		}
		if b := e.add(e.p1, "after repair", nil); b.ID != "BUG-001" {
			t.Errorf("after repair: %+v", b)
		}
	})

	t.Run("deny/corrupt-pages", func(t *testing.T) {
		e := newEnv(t)
		for i := range 200 {
			e.add(e.p1, fmt.Sprintf("bug %d", i), map[string]any{"description": strings.Repeat("lorem ipsum ", 50)})
		}
		e.tr.close()
		data, err := os.ReadFile(e.dbPath())
		if err != nil {
			t.Fatal(err)
		}
		// Keep the header page, scramble everything after it.
		for i := 4096; i < len(data); i++ {
			data[i] = byte(i * 7)
		}
		if err := os.WriteFile(e.dbPath(), data, 0o600); err != nil {
			t.Fatal(err)
		}
		e.restart()
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{"get_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-100"}},
			{"add_bug", map[string]any{"project_path": e.p1, "title": "x"}},
			{"search_bugs_global", map[string]any{"query": "lorem"}},
		} {
			res := e.call(c.tool, c.args)
			if !res.IsError || !strings.Contains(res.Text, "corrupt") {
				t.Errorf("%s on scrambled pages: isError=%v %q", c.tool, res.IsError, res.Text)
			}
		}
	})

	t.Run("deny/read-only-file", func(t *testing.T) {
		e := newEnv(t)
		e.add(e.p1, "written before", nil)
		e.tr.close()
		// SQLite must treat a file whose header's write version is above 2
		// as read-only; unlike file permissions, that holds for root too.
		f, err := os.OpenFile(e.dbPath(), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{3}, 18); err != nil {
			t.Fatal(err)
		}
		f.Close()
		e.restart()
		res := e.call("add_bug", map[string]any{"project_path": e.p1, "title": "x"})
		if !res.IsError || !strings.Contains(res.Text, "is read-only; nothing was changed") {
			t.Fatalf("add_bug on read-only database: %q", res.Text)
		}
		// Reading still works.
		if b := e.get(e.p1, "BUG-001"); b.Title != "written before" {
			t.Errorf("get_bug = %+v", b)
		}
	})

	t.Run("deny/read-only-permissions", func(t *testing.T) {
		// File permissions do not bind root, and CI runs as root: there
		// the case runs again in a child test process as nobody.
		if asUnprivileged(t) {
			return
		}
		e := newEnv(t)
		e.add(e.p1, "written before", nil)
		e.tr.close()
		dir := filepath.Dir(e.dbPath())
		for _, p := range []string{e.dbPath(), dir} {
			if err := os.Chmod(p, 0o500); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700); os.Chmod(e.dbPath(), 0o600) })
		e.restart()
		res := e.call("add_bug", map[string]any{"project_path": e.p1, "title": "x"})
		if !res.IsError || !strings.Contains(res.Text, e.dbPath()+" is read-only") {
			t.Fatalf("add_bug on read-only file: %q", res.Text)
		}
	})

	t.Run("deny/locked", func(t *testing.T) {
		e := newEnv(t, func(o *storeOptions) { o.busyTimeout = 100 * time.Millisecond })
		e.add(e.p1, "before the lock", nil)
		other := rawDB(t, e.dbPath())
		conn, err := other.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		// The call has no deadline: only the busy timeout ends its wait,
		// with SQLITE_BUSY (a deadline would say it did not answer).
		res := e.call("add_bug", map[string]any{"project_path": e.p1, "title": "blocked"})
		if !res.IsError || !strings.Contains(res.Text, "locked by another writer") {
			t.Fatalf("add_bug under another writer's lock: %q", res.Text)
		}
		// And the writer waits as long as configured: not SQLite's
		// default of not at all, nor the store's default five seconds.
		st, err := e.tr.store(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var busy int
		if err := st.w.QueryRowContext(t.Context(), "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 100 {
			t.Errorf("writer's busy_timeout = %d, %v; want 100 (ms)", busy, err)
		}
		// Readers are not blocked by a writer in WAL mode.
		if b := e.get(e.p1, "BUG-001"); b.Title != "before the lock" {
			t.Errorf("get_bug under lock = %+v", b)
		}
		if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if b := e.add(e.p1, "after the lock", nil); b.ID != "BUG-002" {
			t.Errorf("after the lock: %s, want BUG-002 (the failed add must not use an id)", b.ID)
		}
	})

	t.Run("deny/disk-full", func(t *testing.T) {
		e := newEnv(t)
		e.add(e.p1, "fits", nil)
		e.tr.close()
		var pages int
		if err := rawDB(t, e.dbPath()).QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		// A page limit at the current size stands in for a full disk.
		e.opts.pragmas = []string{fmt.Sprintf("max_page_count(%d)", pages)}
		e.restart()
		var res *plugin.Result
		for i := range 50 {
			res = e.call("add_bug", map[string]any{"project_path": e.p1, "title": fmt.Sprintf("filler %d", i), "description": strings.Repeat("x", 8000)})
			if res.IsError {
				break
			}
		}
		if !res.IsError || !strings.Contains(res.Text, "is full; nothing was changed") {
			t.Fatalf("no disk-full error: %q", res.Text)
		}
		if b := e.get(e.p1, "BUG-001"); b.Title != "fits" {
			t.Errorf("existing bug after disk full: %+v", b)
		}
	})

	t.Run("deny/no-data-directory", func(t *testing.T) {
		e := newEnv(t)
		e.host.Data = ""
		e.restart()
		res := e.call("init_bugtracker", map[string]any{"project_path": e.p1})
		if !res.IsError || !strings.Contains(res.Text, "no data directory") {
			t.Errorf("no data directory: %q", res.Text)
		}
	})

	t.Run("deny/cancelled-call", func(t *testing.T) {
		e := newEnv(t)
		ctx, cancel := contextCancelled(t)
		defer cancel()
		if _, err := e.callCtx(ctx, "add_bug", map[string]any{"project_path": e.p1, "title": "x"}); !isContextError(err) {
			t.Errorf("cancelled call: err = %v, want the context's error", err)
		}
	})
}
