package bugtracker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// TestInputSchemas checks what the server's validation enforces before a
// handler runs: required fields, enums, lengths and no extra properties.
func TestInputSchemas(t *testing.T) {
	e := newEnv(t)
	schemas := map[string]*plugin.Schema{}
	for name, tool := range e.tools {
		s, err := plugin.CompileSchema(name, tool.InputSchema)
		if err != nil {
			t.Fatal(err)
		}
		schemas[name] = s
	}
	long := strings.Repeat("x", 201)
	for name, tc := range map[string]struct {
		tool, args string
		ok         bool
	}{
		"allow/init-empty":             {"init_bugtracker", `{}`, true},
		"allow/add-full":               {"add_bug", `{"title": "t", "description": "d", "priority": "critical", "tags": ["a"], "project_path": "/p"}`, true},
		"allow/update-all":             {"update_bug", `{"bug_id": "BUG-001", "status": "resolved", "priority": "low", "tags": [], "related_bugs": [{"bug_id": "bug-2", "relationship": "duplicated_by"}], "note": "n"}`, true},
		"allow/close":                  {"close_bug", `{"bug_id": "BUG-1000", "resolution": "r"}`, true},
		"allow/list-page":              {"list_bugs", `{"status": "in_progress", "limit": 100, "cursor": "abc"}`, true},
		"allow/search":                 {"search_bugs_global", `{"query": "crash", "tags": ["ui"], "limit": 1}`, true},
		"deny/init-extra-property":     {"init_bugtracker", `{"path": "/p"}`, false},
		"deny/add-no-title":            {"add_bug", `{"description": "d"}`, false},
		"deny/add-empty-title":         {"add_bug", `{"title": ""}`, false},
		"deny/add-blank-title":         {"add_bug", `{"title": "   "}`, false},
		"deny/add-long-title":          {"add_bug", `{"title": "` + long + `"}`, false},
		"deny/add-bad-priority":        {"add_bug", `{"title": "t", "priority": "urgent"}`, false},
		"deny/add-tags-not-strings":    {"add_bug", `{"title": "t", "tags": [1]}`, false},
		"deny/add-empty-tag":           {"add_bug", `{"title": "t", "tags": [""]}`, false},
		"deny/get-no-id":               {"get_bug", `{}`, false},
		"deny/get-bad-id":              {"get_bug", `{"bug_id": "42"}`, false},
		"deny/update-bad-status":       {"update_bug", `{"bug_id": "BUG-1", "status": "done"}`, false},
		"deny/update-bad-relationship": {"update_bug", `{"bug_id": "BUG-1", "related_bugs": [{"bug_id": "BUG-2", "relationship": "parent"}]}`, false},
		"deny/update-relation-no-id":   {"update_bug", `{"bug_id": "BUG-1", "related_bugs": [{"relationship": "blocks"}]}`, false},
		"deny/update-title":            {"update_bug", `{"bug_id": "BUG-1", "title": "renamed"}`, false},
		"deny/close-no-id":             {"close_bug", `{"resolution": "r"}`, false},
		"deny/list-limit-zero":         {"list_bugs", `{"limit": 0}`, false},
		"deny/list-limit-too-big":      {"list_bugs", `{"limit": 101}`, false},
		"deny/list-query":              {"list_bugs", `{"query": "x"}`, false},
		"deny/search-project-path":     {"search_bugs_global", `{"project_path": "/p"}`, false},
		"deny/search-empty-query":      {"search_bugs_global", `{"query": ""}`, false},
		"deny/search-bad-status":       {"search_bugs_global", `{"status": "Open"}`, false},
	} {
		t.Run(name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tc.args), &v); err != nil {
				t.Fatal(err)
			}
			err := schemas[tc.tool].Validate(v)
			if (err == nil) != tc.ok {
				t.Errorf("Validate(%s) = %v, want ok=%v", tc.args, err, tc.ok)
			}
		})
	}
}
