package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EBugTracker drives the bug tracker through the real binary: a
// bug's lifecycle in a project under the allowed paths, persistence
// across a server restart, and a project outside the allowed paths
// denied by the filesystem policy and audited.
func TestE2EBugTracker(t *testing.T) {
	e := newEnv(t, "")
	// The database lives outside the allowed paths: it is the server's own
	// state, not a tool's request.
	db := filepath.Join(t.TempDir(), "tracker", "bugs.db")
	e.vars = []string{"MCP_SECURE_BUGTRACKER_DB=" + db}
	project := filepath.Join(e.workspace, "app")
	outside := filepath.Join(e.dir, "elsewhere")
	for _, d := range []string{project, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	structured := func(t *testing.T, tool string, args map[string]any) map[string]any {
		t.Helper()
		res := call(t, e.connect(t, "2025-11-25"), tool, args)
		if res.IsError {
			t.Fatalf("%s: %s", tool, text(res))
		}
		sc, ok := res.StructuredContent.(map[string]any)
		if !ok {
			t.Fatalf("%s: structuredContent = %#v", tool, res.StructuredContent)
		}
		return sc
	}

	t.Run("allow/lifecycle", func(t *testing.T) {
		cs := e.connect(t, "2025-11-25")
		ok := func(tool string, args map[string]any) map[string]any {
			t.Helper()
			res := call(t, cs, tool, args)
			if res.IsError {
				t.Fatalf("%s: %s", tool, text(res))
			}
			sc, _ := res.StructuredContent.(map[string]any)
			if sc == nil || text(res) == "" {
				t.Fatalf("%s: text %q, structuredContent %#v", tool, text(res), res.StructuredContent)
			}
			return sc
		}
		bug := ok("add_bug", map[string]any{"project_path": project, "title": "Login button does nothing",
			"description": "Clicking it on the home page has no effect", "priority": "high", "tags": []string{"ui", "auth"}})
		if bug["id"] != "BUG-001" || bug["project_path"] != project || bug["status"] != "open" {
			t.Fatalf("add_bug = %v", bug)
		}
		if second := ok("add_bug", map[string]any{"project_path": project, "title": "Typo in footer"}); second["id"] != "BUG-002" {
			t.Fatalf("second add_bug = %v", second)
		}
		upd := ok("update_bug", map[string]any{"project_path": project, "bug_id": "BUG-001", "status": "in_progress", "note": "missing onClick handler"})
		if ch, _ := upd["changes"].(map[string]any); ch == nil || strings.Join(toStrings(ch["status"]), ">") != "open>in_progress" {
			t.Errorf("update_bug changes = %v", upd["changes"])
		}
		closed := ok("close_bug", map[string]any{"project_path": project, "bug_id": "BUG-001", "resolution": "wired the handler"})
		if b, _ := closed["bug"].(map[string]any); b["status"] != "closed" || b["resolution"] != "wired the handler" {
			t.Errorf("close_bug = %v", closed)
		}
		list := ok("list_bugs", map[string]any{"project_path": project})
		if got := bugIDs(list); strings.Join(got, ",") != "BUG-002,BUG-001" {
			t.Errorf("list_bugs = %v", got)
		}
		if got := bugIDs(ok("list_bugs", map[string]any{"project_path": project, "status": "closed"})); strings.Join(got, ",") != "BUG-001" {
			t.Errorf("list_bugs closed = %v", got)
		}
		found := ok("search_bugs_global", map[string]any{"query": "onClick handler"})
		if got := bugIDs(found); strings.Join(got, ",") != "BUG-001" {
			t.Errorf("search_bugs_global = %v", found)
		}

		// Every call was a tool decision, and the project path a
		// filesystem decision linked to it.
		callRec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": "add_bug", "result": "allow"})
		fsRec := e.findRecord(t, map[string]any{"kind": "filesystem", "tool": "add_bug", "result": "allow"})
		if fsRec["parent_decision_id"] == nil {
			t.Errorf("filesystem record not linked to a call: %v (call %v)", fsRec, callRec["decision_id"])
		}
	})

	t.Run("allow/survives-restart", func(t *testing.T) {
		// A new connection is a new server process on the same database.
		b := structured(t, "get_bug", map[string]any{"project_path": project, "bug_id": "BUG-001"})
		if b["status"] != "closed" {
			t.Fatalf("get_bug after restart = %v", b)
		}
		if h, _ := b["history"].([]any); len(h) != 2 {
			t.Errorf("history = %v", b["history"])
		}
		if next := structured(t, "add_bug", map[string]any{"project_path": project, "title": "third"}); next["id"] != "BUG-003" {
			t.Errorf("id after restart = %v", next["id"])
		}
	})

	t.Run("deny/project-outside-allowed-paths", func(t *testing.T) {
		cs := e.connect(t, "2025-11-25")
		res := call(t, cs, "add_bug", map[string]any{"project_path": outside, "title": "should not land"})
		msg := text(res)
		if !res.IsError || !strings.Contains(msg, "filesystem policy denied") || !strings.Contains(msg, "filesystem.allowed_paths") {
			t.Fatalf("outside project not denied: isError=%v %q", res.IsError, msg)
		}
		if sc, _ := res.StructuredContent.(map[string]any); sc["error"] != "denied_by_policy" || sc["kind"] != "filesystem" {
			t.Errorf("structuredContent = %v", res.StructuredContent)
		}
		rec := e.findRecord(t, map[string]any{"kind": "filesystem", "result": "deny", "tool": "add_bug"})
		if in, _ := rec["input"].(map[string]any); in["path"] != outside {
			t.Errorf("deny record input = %v", rec["input"])
		}
		// Nothing was stored for it.
		all := call(t, cs, "search_bugs_global", map[string]any{"query": "should not land"})
		if all.IsError || strings.Contains(text(all), outside) {
			t.Errorf("search after the denial: %q", text(all))
		}
	})

	t.Run("deny/schema", func(t *testing.T) {
		cs := e.connect(t, "2025-11-25")
		res := call(t, cs, "add_bug", map[string]any{"project_path": project, "title": "x", "priority": "urgent"})
		if !res.IsError || !strings.Contains(text(res), "priority") {
			t.Errorf("bad priority accepted: %q", text(res))
		}
	})
}

func bugIDs(page map[string]any) []string {
	bugs, _ := page["bugs"].([]any)
	var ids []string
	for _, b := range bugs {
		m, _ := b.(map[string]any)
		id, _ := m["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

func toStrings(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestE2EGlobalSearchFollowsPolicy: search_bugs_global returns only the
// projects the filesystem policy allows now; bugs recorded under a wider
// policy stay hidden once it narrows.
func TestE2EGlobalSearchFollowsPolicy(t *testing.T) {
	e := newEnv(t, "")
	e.vars = []string{"MCP_SECURE_BUGTRACKER_DB=" + filepath.Join(t.TempDir(), "bugs.db")}
	open, closed := filepath.Join(e.workspace, "open-app"), filepath.Join(e.workspace, "private-app")
	for _, d := range []string{open, closed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cs := e.connect(t, "2025-11-25")
	for _, p := range []string{open, closed} {
		if res := call(t, cs, "add_bug", map[string]any{"project_path": p, "title": "Crash in " + filepath.Base(p)}); res.IsError {
			t.Fatalf("add_bug: %s", text(res))
		}
	}
	res := call(t, cs, "search_bugs_global", map[string]any{"query": "crash"})
	if res.IsError || !strings.Contains(text(res), "private-app") || !strings.Contains(text(res), "open-app") {
		t.Fatalf("before narrowing: %v %q", res.IsError, text(res))
	}
	cs.Close()

	// The same server files, a narrower policy.
	policy, err := os.ReadFile(e.policy)
	if err != nil {
		t.Fatal(err)
	}
	narrowed := strings.Replace(string(policy), `denied_paths: ["**/.env"]`, `denied_paths: ["**/.env", "**/private-app/**", "**/private-app"]`, 1)
	if narrowed == string(policy) {
		t.Fatal("the test policy has no denied_paths line to narrow")
	}
	if err := os.WriteFile(e.policy, []byte(narrowed), 0o644); err != nil {
		t.Fatal(err)
	}
	cs = e.connect(t, "2025-11-25")
	for _, args := range []map[string]any{{"query": "crash"}, {}, {"status": "open"}} {
		res = call(t, cs, "search_bugs_global", args)
		if res.IsError || strings.Contains(text(res), "private-app") || !strings.Contains(text(res), "open-app") {
			t.Errorf("after narrowing, %v: %v %q", args, res.IsError, text(res))
		}
		if sc, _ := res.StructuredContent.(map[string]any); sc["count"] != 1.0 {
			t.Errorf("after narrowing, %v: count = %v", args, sc["count"])
		}
	}
	rec := e.findRecord(t, map[string]any{"kind": "filesystem", "tool": "search_bugs_global", "result": "deny"})
	if in, _ := rec["input"].(map[string]any); in["path"] != closed {
		t.Errorf("deny record = %v", rec)
	}
}

// TestE2EBugTrackerSymlinkEscape: a project path that is a symlink inside
// the workspace to a directory outside it is refused by the real
// filesystem door (the real path is decided again), and audited.
func TestE2EBugTrackerSymlinkEscape(t *testing.T) {
	e := newEnv(t, "")
	e.vars = []string{"MCP_SECURE_BUGTRACKER_DB=" + filepath.Join(t.TempDir(), "bugs.db")}
	outside := filepath.Join(e.dir, "outside-project")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(e.workspace, "looks-inside")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "2025-11-25")
	res := call(t, cs, "add_bug", map[string]any{"project_path": link, "title": "planted"})
	if !res.IsError || !strings.Contains(text(res), "filesystem policy denied") {
		t.Fatalf("a symlink out of the workspace was accepted: %v %q", res.IsError, text(res))
	}
	rec := e.findRecord(t, map[string]any{"kind": "filesystem", "tool": "add_bug", "result": "deny"})
	if !strings.Contains(fmt.Sprint(rec["reasons"]), "leads out of its allowed directory") {
		t.Errorf("deny record = %v", rec)
	}
	if res := call(t, cs, "list_bugs", map[string]any{"project_path": link}); !res.IsError {
		t.Errorf("list_bugs through the symlink: %q", text(res))
	}
}

// TestE2EBugTrackerClosedAtExit: the database is closed when the server
// exits, so SQLite checkpoints its write-ahead log into the database
// file and removes it.
func TestE2EBugTrackerClosedAtExit(t *testing.T) {
	e := newEnv(t, "")
	db := filepath.Join(t.TempDir(), "bugs.db")
	e.vars = []string{"MCP_SECURE_BUGTRACKER_DB=" + db}
	project := filepath.Join(e.workspace, "app")
	if err := os.MkdirAll(project, 0o755); err != nil {
		t.Fatal(err)
	}
	cs := e.connect(t, "2025-11-25")
	if res := call(t, cs, "add_bug", map[string]any{"project_path": project, "title": "written before exit"}); res.IsError {
		t.Fatalf("add_bug: %s", text(res))
	}
	if _, err := os.Stat(db + "-wal"); err != nil {
		t.Fatalf("no write-ahead log while the server runs: %v", err)
	}
	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	waitFor(t, 10*time.Second, "the write-ahead log to be checkpointed and removed", func() bool {
		_, err := os.Stat(db + "-wal")
		return os.IsNotExist(err)
	})
}
