package bugtracker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/plugin/plugintest"
)

func TestConformance(t *testing.T) {
	t.Run("with-data-and-files", func(t *testing.T) {
		e := newEnv(t)
		p := plugintest.Run(t, Name, e.host)
		if got := len(p.Tools()); got != 7 {
			t.Errorf("%d tools, want 7", got)
		}
		for _, tool := range p.Tools() {
			if tool.Category != "bugtracker" || !strings.Contains(strings.Join(tool.Intents, " "), "track") {
				t.Errorf("%s: category %q intents %v", tool.Name, tool.Category, tool.Intents)
			}
		}
	})
	t.Run("bare-host", func(t *testing.T) {
		plugintest.Run(t, Name, &plugintest.Host{})
	})
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)

	res := e.ok("init_bugtracker", map[string]any{"project_path": e.p1})
	init := res.Structured.(*InitResult)
	if !init.Created || init.Path != e.p1 || init.Database != e.dbPath() || init.SchemaVersion != schemaVersion {
		t.Fatalf("init = %+v", init)
	}
	if again := e.ok("init_bugtracker", map[string]any{"project_path": e.p1}).Structured.(*InitResult); again.Created || again.ID != init.ID {
		t.Errorf("second init = %+v, want the same project, not created", again)
	}

	bug := e.add(e.p1, "  Login button not responding ", map[string]any{
		"description": "Clicking does nothing on the home page",
		"priority":    "high",
		"tags":        []string{"UI", "auth", " ui "},
	})
	want := &Bug{
		ID: "BUG-001", ProjectPath: e.p1, Title: "Login button not responding",
		Description: "Clicking does nothing on the home page", Status: "open", Priority: "high",
		Tags: []string{"auth", "ui"}, RelatedBugs: []Link{}, CreatedAt: bug.CreatedAt, UpdatedAt: bug.CreatedAt,
		History: []HistoryEntry{},
	}
	if diff := cmp.Diff(want, bug); diff != "" {
		t.Fatalf("add_bug (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, e.get(e.p1, "BUG-001")); diff != "" {
		t.Fatalf("get_bug (-want +got):\n%s", diff)
	}
	if b := e.add(e.p1, "Second", nil); b.ID != "BUG-002" || b.Priority != "medium" || len(b.Tags) != 0 {
		t.Errorf("second bug = %+v", b)
	}

	// A real change is recorded with old and new values and the note.
	u := e.ok("update_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001", "status": "in_progress",
		"priority": "critical", "tags": []string{"auth"}, "note": "Missing onClick handler"}).Structured.(*Updated)
	wantChanges := map[string][2]any{
		"status":   {"open", "in_progress"},
		"priority": {"high", "critical"},
		"tags":     {[]string{"auth", "ui"}, []string{"auth"}},
	}
	if diff := cmp.Diff(wantChanges, u.Changes); diff != "" || !u.Recorded {
		t.Fatalf("update changes (-want +got):\n%s recorded=%v", diff, u.Recorded)
	}
	if h := u.Bug.History; len(h) != 1 || h[0].Note != "Missing onClick handler" || h[0].Changes["status"] != [2]any{"open", "in_progress"} {
		t.Fatalf("history = %+v", h)
	}

	// Setting what is already set records nothing.
	u = e.ok("update_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001", "status": "in_progress", "tags": []string{"AUTH"}}).Structured.(*Updated)
	if u.Recorded || len(u.Changes) != 0 || len(u.Bug.History) != 1 {
		t.Errorf("no-op update recorded: %+v", u)
	}
	// A note alone is recorded.
	u = e.ok("update_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001", "note": "Reproduced on Firefox"}).Structured.(*Updated)
	if !u.Recorded || len(u.Changes) != 0 || len(u.Bug.History) != 2 {
		t.Errorf("note-only update: %+v", u)
	}

	res = e.ok("close_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001", "resolution": "Added the handler"})
	u = res.Structured.(*Updated)
	if u.Bug.Status != "closed" || u.Bug.Resolution != "Added the handler" || len(u.Bug.History) != 3 {
		t.Fatalf("close = %+v", u.Bug)
	}
	last := u.Bug.History[2]
	if last.Note != "Added the handler" || last.Changes["status"] != [2]any{"in_progress", "closed"} {
		t.Errorf("close history = %+v", last)
	}
	if !strings.Contains(res.Text, "Closed BUG-001") {
		t.Errorf("close text = %q", res.Text)
	}

	// Reopening is an update; it clears the resolution, which stays in
	// the history.
	u = e.ok("update_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001", "status": "open", "note": "Came back"}).Structured.(*Updated)
	if u.Bug.Status != "open" || u.Bug.Resolution != "" || u.Changes["resolution"] != [2]any{"Added the handler", ""} {
		t.Errorf("reopen = %+v changes %v", u.Bug, u.Changes)
	}

	page := e.ok("list_bugs", map[string]any{"project_path": e.p1}).Structured.(*Page)
	if diff := cmp.Diff([]string{"BUG-002", "BUG-001"}, ids(page.Bugs)); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	page = e.ok("list_bugs", map[string]any{"project_path": e.p1, "status": "open", "priority": "critical", "tags": []string{"auth"}}).Structured.(*Page)
	if diff := cmp.Diff([]string{"BUG-001"}, ids(page.Bugs)); diff != "" {
		t.Errorf("filtered list (-want +got):\n%s", diff)
	}

	res = e.ok("search_bugs_global", map[string]any{"query": "firefox"})
	page = res.Structured.(*Page)
	if diff := cmp.Diff([]string{"BUG-001"}, ids(page.Bugs)); diff != "" || page.Bugs[0].ProjectPath != e.p1 {
		t.Errorf("search by note (-want +got):\n%s %+v", diff, page.Bugs)
	}
	if !strings.Contains(res.Text, "BUG-001") || !strings.Contains(res.Text, e.p1) {
		t.Errorf("search text = %q", res.Text)
	}
}

// TestResultText checks each result's text carries its structured data.
func TestResultText(t *testing.T) {
	e := newEnv(t)
	e.add(e.p1, "Crash on save", map[string]any{"description": "Stack trace attached", "tags": []string{"io"}})
	e.add(e.p1, "Slow start", nil)
	e.ok("update_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001", "related_bugs": []map[string]any{{"bug_id": "BUG-002", "relationship": "blocks"}}, "note": "see BUG-002"})
	text := e.ok("get_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-001"}).Text
	for _, want := range []string{"BUG-001: Crash on save", "Project: " + e.p1, "Status: open", "Priority: medium", "Tags: io",
		"Related: blocks BUG-002", "Stack trace attached", "History (1):", `related_bugs: (none) → [{"bug_id":"BUG-002","relationship":"blocks"}]`, "note: see BUG-002"} {
		if !strings.Contains(text, want) {
			t.Errorf("get_bug text lacks %q:\n%s", want, text)
		}
	}
	text = e.ok("list_bugs", map[string]any{"project_path": e.p1, "limit": 1}).Text
	for _, want := range []string{"1 bug(s) in " + e.p1, "BUG-002 [open, medium] Slow start", "cursor"} {
		if !strings.Contains(text, want) {
			t.Errorf("list_bugs text lacks %q:\n%s", want, text)
		}
	}
	if text := e.ok("search_bugs_global", map[string]any{"query": "nothing-like-this"}).Text; !strings.HasPrefix(text, "No bugs in all projects") {
		t.Errorf("empty search text = %q", text)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	e.add(e.p1, "One", nil)
	e.add(e.p1, "Two", nil)
	e.ok("close_bug", map[string]any{"project_path": e.p1, "bug_id": "BUG-002"})
	file := filepath.Join(e.workspace, "file.txt")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := e.ok("list_bugs", map[string]any{"project_path": e.p1, "limit": 1}).Structured.(*Page)
	long := strings.Repeat("x", 201)

	for name, tc := range map[string]struct {
		tool string
		args map[string]any
		want string
	}{
		"deny/no-project":                  {"add_bug", map[string]any{"title": "x"}, "pass project_path or set MCP_PROJECT_PATH"},
		"deny/relative-project-no-base":    {"list_bugs", map[string]any{"project_path": "alpha"}, `"alpha" is relative`},
		"deny/missing-project-dir":         {"init_bugtracker", map[string]any{"project_path": filepath.Join(e.workspace, "nope")}, "does not exist"},
		"deny/project-is-a-file":           {"init_bugtracker", map[string]any{"project_path": file}, "is not a directory"},
		"deny/uninitialised-project":       {"list_bugs", map[string]any{"project_path": e.p2}, "not initialised"},
		"deny/add-blank-title":             {"add_bug", map[string]any{"title": " \t ", "project_path": e.p1}, "title is required"},
		"deny/add-long-title":              {"add_bug", map[string]any{"title": long, "project_path": e.p1}, "longer than 200"},
		"deny/add-bad-priority":            {"add_bug", map[string]any{"title": "x", "priority": "urgent", "project_path": e.p1}, `priority "urgent" is not one of`},
		"deny/add-too-many-tags":           {"add_bug", map[string]any{"title": "x", "tags": strings.Split(strings.Repeat("t,", 21), ","), "project_path": e.p1}, "at most 20 tags"},
		"deny/get-bad-id":                  {"get_bug", map[string]any{"bug_id": "ISSUE-1", "project_path": e.p1}, "not a bug id"},
		"deny/get-missing-bug":             {"get_bug", map[string]any{"bug_id": "BUG-099", "project_path": e.p1}, "BUG-099: no such bug"},
		"deny/get-uninitialised":           {"get_bug", map[string]any{"bug_id": "BUG-001", "project_path": e.p2}, "not initialised"},
		"deny/update-nothing":              {"update_bug", map[string]any{"bug_id": "BUG-001", "project_path": e.p1}, "nothing to update"},
		"deny/update-blank-note":           {"update_bug", map[string]any{"bug_id": "BUG-001", "note": "  ", "project_path": e.p1}, "nothing to update"},
		"deny/update-bad-status":           {"update_bug", map[string]any{"bug_id": "BUG-001", "status": "done", "project_path": e.p1}, `status "done" is not one of`},
		"deny/update-missing-bug":          {"update_bug", map[string]any{"bug_id": "BUG-007", "note": "x", "project_path": e.p1}, "BUG-007: no such bug"},
		"deny/related-missing":             {"update_bug", map[string]any{"bug_id": "BUG-001", "related_bugs": []map[string]any{{"bug_id": "BUG-050", "relationship": "blocks"}}, "project_path": e.p1}, "BUG-050 does not exist in this project"},
		"deny/related-self":                {"update_bug", map[string]any{"bug_id": "BUG-001", "related_bugs": []map[string]any{{"bug_id": "BUG-001", "relationship": "blocks"}}, "project_path": e.p1}, "cannot be related to itself"},
		"deny/related-twice":               {"update_bug", map[string]any{"bug_id": "BUG-001", "related_bugs": []map[string]any{{"bug_id": "BUG-002", "relationship": "blocks"}, {"bug_id": "bug-2", "relationship": "related_to"}}, "project_path": e.p1}, "BUG-002 is listed twice"},
		"deny/related-bad-kind":            {"update_bug", map[string]any{"bug_id": "BUG-001", "related_bugs": []map[string]any{{"bug_id": "BUG-002", "relationship": "parent_of"}}, "project_path": e.p1}, `relationship "parent_of"`},
		"deny/related-other-project":       {"update_bug", map[string]any{"bug_id": "BUG-001", "related_bugs": []map[string]any{{"bug_id": "BUG-003", "relationship": "blocks"}}, "project_path": e.p1}, "BUG-003 does not exist in this project"},
		"deny/close-closed":                {"close_bug", map[string]any{"bug_id": "BUG-002", "project_path": e.p1}, "BUG-002: bug is already closed"},
		"deny/close-missing":               {"close_bug", map[string]any{"bug_id": "BUG-003", "project_path": e.p1}, "BUG-003: no such bug"},
		"deny/list-bad-limit":              {"list_bugs", map[string]any{"limit": 101, "project_path": e.p1}, "limit must be between 1 and 100"},
		"deny/list-garbage-cursor":         {"list_bugs", map[string]any{"cursor": "!!not-a-cursor", "project_path": e.p1}, "cursor is not valid"},
		"deny/list-cursor-of-other-filter": {"list_bugs", map[string]any{"cursor": other.NextCursor, "status": "closed", "project_path": e.p1}, "cursor is not valid"},
		"deny/search-no-words":             {"search_bugs_global", map[string]any{"query": "!!! ***"}, "has no words"},
		"deny/search-bad-priority":         {"search_bugs_global", map[string]any{"priority": "p1"}, `priority "p1"`},
	} {
		t.Run(name, func(t *testing.T) {
			res := e.call(tc.tool, tc.args)
			if !res.IsError || !strings.Contains(res.Text, tc.want) {
				t.Fatalf("isError=%v text=%q, want an error containing %q", res.IsError, res.Text, tc.want)
			}
			if res.Structured != nil {
				t.Errorf("error result has structured content %v", res.Structured)
			}
		})
	}
	if other.NextCursor == "" {
		t.Fatal("fixture: expected a next cursor")
	}
	// Nothing above changed the bugs.
	if b := e.get(e.p1, "BUG-001"); len(b.History) != 0 || len(b.RelatedBugs) != 0 {
		t.Errorf("a failed call left a change: %+v", b)
	}
}

func TestProjectOutsideAllowedPathsIsDenied(t *testing.T) {
	e := newEnv(t)
	for _, tool := range []string{"init_bugtracker", "add_bug", "get_bug", "update_bug", "close_bug", "list_bugs"} {
		t.Run("deny/"+tool, func(t *testing.T) {
			args := map[string]any{"project_path": e.outside, "title": "x", "bug_id": "BUG-001", "note": "n"}
			raw := map[string]any{}
			schemaProps := e.tools[tool].InputSchema
			for k, v := range args {
				if strings.Contains(string(schemaProps), `"`+k+`"`) {
					raw[k] = v
				}
			}
			res, err := e.callCtx(t.Context(), tool, raw)
			if !errors.Is(err, plugintest.ErrOutside) {
				t.Fatalf("got %+v, %v; want an error wrapping the door's denial", res, err)
			}
		})
	}
	// A symlink inside the workspace to a directory outside it is
	// followed and refused.
	link := filepath.Join(e.workspace, "escape")
	if err := os.Symlink(e.outside, link); err != nil {
		t.Fatal(err)
	}
	if _, err := e.callCtx(t.Context(), "init_bugtracker", map[string]any{"project_path": link}); !errors.Is(err, plugintest.ErrOutside) {
		t.Errorf("symlink escape: err = %v", err)
	}
	// Nothing was registered.
	if res := e.ok("search_bugs_global", map[string]any{}); res.Structured.(*Page).Count != 0 {
		t.Errorf("bugs after denials: %s", res.Text)
	}
}

func TestProjectFromEnvironment(t *testing.T) {
	e := newEnv(t)
	t.Setenv(ProjectEnv, e.p1)
	e.restart()

	if b := e.add("", "From env", nil); b.ProjectPath != e.p1 || b.ID != "BUG-001" {
		t.Fatalf("add without project_path = %+v", b)
	}
	// A relative project_path is resolved against MCP_PROJECT_PATH.
	mkdir(t, filepath.Join(e.p1, "sub"))
	if b := e.add("sub", "Relative", nil); b.ProjectPath != filepath.Join(e.p1, "sub") || b.ID != "BUG-001" {
		t.Errorf("relative project = %+v", b)
	}
	if b := e.add("../beta", "Relative up", nil); b.ProjectPath != e.p2 {
		t.Errorf("relative ../beta = %+v", b)
	}

	t.Setenv(ProjectEnv, "relative/dir")
	e.restart()
	if res := e.call("list_bugs", map[string]any{}); !res.IsError || !strings.Contains(res.Text, "MCP_PROJECT_PATH \"relative/dir\" is relative") {
		t.Errorf("relative MCP_PROJECT_PATH: %q", res.Text)
	}
}

func TestRelatedBugs(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.add(e.p1, fmt.Sprintf("bug %d", i+1), nil)
	}
	link := func(id string, links ...Link) *Updated {
		t.Helper()
		if links == nil {
			links = []Link{}
		}
		return e.ok("update_bug", map[string]any{"project_path": e.p1, "bug_id": id, "related_bugs": links}).Structured.(*Updated)
	}

	u := link("BUG-001", Link{"BUG-002", "blocks"}, Link{"BUG-003", "duplicate_of"})
	if diff := cmp.Diff([]Link{{"BUG-002", "blocks"}, {"BUG-003", "duplicate_of"}}, u.Bug.RelatedBugs); diff != "" {
		t.Fatalf("links (-want +got):\n%s", diff)
	}
	b2 := e.get(e.p1, "BUG-002")
	if diff := cmp.Diff([]Link{{"BUG-001", "blocked_by"}}, b2.RelatedBugs); diff != "" {
		t.Errorf("inverse on BUG-002 (-want +got):\n%s", diff)
	}
	if len(b2.History) != 1 || b2.History[0].Changes["related_bugs"][0] == nil {
		t.Errorf("BUG-002 history = %+v", b2.History)
	}
	if diff := cmp.Diff([]Link{{"BUG-001", "duplicated_by"}}, e.get(e.p1, "BUG-003").RelatedBugs); diff != "" {
		t.Errorf("inverse on BUG-003 (-want +got):\n%s", diff)
	}

	// Replacing the links drops the inverse of the removed one and
	// rewrites the changed one.
	link("BUG-001", Link{"BUG-002", "related_to"})
	if diff := cmp.Diff([]Link{{"BUG-001", "related_to"}}, e.get(e.p1, "BUG-002").RelatedBugs); diff != "" {
		t.Errorf("BUG-002 after relink (-want +got):\n%s", diff)
	}
	b3 := e.get(e.p1, "BUG-003")
	if len(b3.RelatedBugs) != 0 || len(b3.History) != 2 {
		t.Errorf("BUG-003 after unlink: %+v", b3)
	}

	// Linking from the other side keeps one consistent pair.
	link("BUG-002", Link{"BUG-001", "blocks"})
	if diff := cmp.Diff([]Link{{"BUG-002", "blocked_by"}}, e.get(e.p1, "BUG-001").RelatedBugs); diff != "" {
		t.Errorf("BUG-001 after reverse link (-want +got):\n%s", diff)
	}
	// The same links again record nothing.
	if u := link("BUG-002", Link{"bug-1", "blocks"}); u.Recorded {
		t.Errorf("same links recorded a change: %v", u.Changes)
	}
	// An empty list removes every link on both sides.
	link("BUG-002")
	if b := e.get(e.p1, "BUG-001"); len(b.RelatedBugs) != 0 {
		t.Errorf("BUG-001 links after clearing: %v", b.RelatedBugs)
	}
}

func TestProjectIsolation(t *testing.T) {
	e := newEnv(t)
	a := e.add(e.p1, "alpha bug", map[string]any{"tags": []string{"shared"}})
	b := e.add(e.p2, "beta bug", map[string]any{"tags": []string{"shared"}})
	e.add(e.p1, "alpha second", nil)
	if a.ID != "BUG-001" || b.ID != "BUG-001" {
		t.Fatalf("ids %s and %s, want BUG-001 in each project", a.ID, b.ID)
	}
	if got := e.get(e.p2, "BUG-001"); got.Title != "beta bug" || got.ProjectPath != e.p2 {
		t.Errorf("BUG-001 of beta = %+v", got)
	}
	if res := e.call("get_bug", map[string]any{"project_path": e.p2, "bug_id": "BUG-002"}); !res.IsError {
		t.Errorf("BUG-002 of alpha reachable from beta: %q", res.Text)
	}
	e.ok("close_bug", map[string]any{"project_path": e.p2, "bug_id": "BUG-001"})
	if got := e.get(e.p1, "BUG-001"); got.Status != "open" {
		t.Errorf("closing beta's BUG-001 changed alpha's: %+v", got)
	}
	page := e.ok("list_bugs", map[string]any{"project_path": e.p2}).Structured.(*Page)
	if diff := cmp.Diff([]string{"BUG-001"}, ids(page.Bugs)); diff != "" || page.Bugs[0].Title != "beta bug" {
		t.Errorf("beta list (-want +got):\n%s", diff)
	}
	global := e.ok("search_bugs_global", map[string]any{"tags": []string{"shared"}}).Structured.(*Page)
	var got []string
	for _, s := range global.Bugs {
		got = append(got, s.ProjectPath+" "+s.ID)
	}
	if diff := cmp.Diff([]string{e.p2 + " BUG-001", e.p1 + " BUG-001"}, got); diff != "" {
		t.Errorf("global (-want +got):\n%s", diff)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 45 {
		tags := []string{"all"}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		e.add(e.p1, fmt.Sprintf("paged bug %d", i+1), map[string]any{"tags": tags})
	}
	walk := func(tool string, args map[string]any) (pages []int, seen []string) {
		t.Helper()
		for range 10 {
			page := e.ok(tool, args).Structured.(*Page)
			pages = append(pages, page.Count)
			seen = append(seen, ids(page.Bugs)...)
			if page.NextCursor == "" {
				return pages, seen
			}
			args["cursor"] = page.NextCursor
		}
		t.Fatal("pagination did not end")
		return nil, nil
	}
	pages, seen := walk("list_bugs", map[string]any{"project_path": e.p1})
	if diff := cmp.Diff([]int{20, 20, 5}, pages); diff != "" {
		t.Errorf("page sizes (-want +got):\n%s", diff)
	}
	var want []string
	for i := 45; i >= 1; i-- {
		want = append(want, formatID(int64(i)))
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("ids newest first (-want +got):\n%s", diff)
	}
	pages, seen = walk("search_bugs_global", map[string]any{"query": "paged", "tags": []string{"even"}, "limit": 10})
	if diff := cmp.Diff([]int{10, 10, 3}, pages); diff != "" || seen[0] != "BUG-045" || seen[22] != "BUG-001" {
		t.Errorf("global pages (-want +got):\n%s %v", diff, seen)
	}
}

func TestSearchText(t *testing.T) {
	e := newEnv(t)
	e.add(e.p1, "Crash when saving", map[string]any{"description": "Null pointer in the serializer"})
	e.add(e.p2, "Résumé upload fails", map[string]any{"description": "PDF only", "priority": "high"})
	e.add(e.p2, "Logout is slow", nil)
	e.ok("close_bug", map[string]any{"project_path": e.p2, "bug_id": "BUG-002", "resolution": "Raised the proxy timeout"})

	for name, tc := range map[string]struct {
		args map[string]any
		want []string // project base name and id
	}{
		"allow/title-word":           {map[string]any{"query": "crash"}, []string{"alpha BUG-001"}},
		"allow/description-word":     {map[string]any{"query": "serializer"}, []string{"alpha BUG-001"}},
		"allow/word-forms":           {map[string]any{"query": "crashes saved"}, []string{"alpha BUG-001"}},
		"allow/diacritics-folded":    {map[string]any{"query": "resume"}, []string{"beta BUG-001"}},
		"allow/resolution-note":      {map[string]any{"query": "proxy timeout"}, []string{"beta BUG-002"}},
		"allow/all-words-must-match": {map[string]any{"query": "crash logout"}, nil},
		"allow/fts-syntax-is-text":   {map[string]any{"query": `"crash" OR NEAR(logout`}, nil},
		"allow/with-filters":         {map[string]any{"query": "upload", "priority": "high", "status": "open"}, []string{"beta BUG-001"}},
		"allow/filter-excludes":      {map[string]any{"query": "upload", "status": "closed"}, nil},
		"allow/no-query":             {map[string]any{"status": "closed"}, []string{"beta BUG-002"}},
	} {
		t.Run(name, func(t *testing.T) {
			page := e.ok("search_bugs_global", tc.args).Structured.(*Page)
			var got []string
			for _, b := range page.Bugs {
				got = append(got, filepath.Base(b.ProjectPath)+" "+b.ID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlerPanicIsAnErrorResult(t *testing.T) {
	e := newEnv(t)
	h := e.tr.safe("boom", func(context.Context, *plugin.Call) (*plugin.Result, error) { panic("kaboom") })
	res, err := h(t.Context(), &plugin.Call{})
	if err != nil || !res.IsError || !strings.Contains(res.Text, "internal error") {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestDatabaseLocation(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		setting, env string
		want         string
		wantErr      bool
	}{
		"allow/default-data-dir":      {want: filepath.Join(dir, "data", Name, DatabaseFile)},
		"allow/env":                   {env: filepath.Join(dir, "env.db"), want: filepath.Join(dir, "env.db")},
		"allow/setting-wins-over-env": {setting: filepath.Join(dir, "policy.db"), env: filepath.Join(dir, "env.db"), want: filepath.Join(dir, "policy.db")},
		"deny/relative-setting":       {setting: "bugs.db", wantErr: true},
		"deny/relative-env":           {env: "x/bugs.db", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(DatabaseEnv, tc.env)
			h := &plugintest.Host{Data: filepath.Join(dir, "data"), Settings: map[string]map[string]string{Name: {DatabaseSetting: tc.setting}}}
			tr, err := newTracker(h, defaultStoreOptions())
			if tc.wantErr {
				if err == nil {
					t.Fatal("relative database path accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := tr.databasePath()
			if err != nil || got != tc.want {
				t.Errorf("databasePath = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestConnectionSettings(t *testing.T) {
	for name, tc := range map[string]struct {
		setting string
		want    int // PRAGMA synchronous: 1 NORMAL, 2 FULL
		wantErr bool
	}{
		"allow/default-normal": {"", 1, false},
		"allow/full":           {"FULL", 2, false},
		"allow/normal":         {"normal", 1, false},
		"deny/off":             {"off", 0, true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.host.Settings = map[string]map[string]string{Name: {SynchronousSetting: tc.setting}}
			tr, err := newTracker(e.host, e.opts)
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.close() })
			st, err := tr.store(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, db := range []*sql.DB{st.w, st.r} {
				var sync, fk, busy int
				var mode string
				for q, v := range map[string]any{"synchronous": &sync, "foreign_keys": &fk, "busy_timeout": &busy, "journal_mode": &mode} {
					if err := db.QueryRow("PRAGMA " + q).Scan(v); err != nil {
						t.Fatal(err)
					}
				}
				if sync != tc.want || fk != 1 || busy != 1000 || mode != "wal" {
					t.Errorf("synchronous=%d foreign_keys=%d busy_timeout=%d journal_mode=%s", sync, fk, busy, mode)
				}
			}
		})
	}
}

func TestParseID(t *testing.T) {
	for in, want := range map[string]int64{"BUG-001": 1, "bug-7": 7, " BUG-1000 ": 1000, "BUG-0": 0, "BUG-": 0, "BUG-+1": 0, "BUG--1": 0, "ISSUE-1": 0, "BUG-99999999999999999999": 0} {
		got, err := parseID(in)
		if (err != nil) != (want == 0) || got != want {
			t.Errorf("parseID(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if formatID(7) != "BUG-007" || formatID(1234) != "BUG-1234" {
		t.Errorf("formatID: %s %s", formatID(7), formatID(1234))
	}
}
