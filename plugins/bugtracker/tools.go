package bugtracker

import (
	"encoding/json"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Schema fragments shared by the tools.
const (
	projectPathProp = `"project_path": {"type": "string", "minLength": 1, "maxLength": 4096,
      "description": "Project directory: absolute, or relative to MCP_PROJECT_PATH. Default: MCP_PROJECT_PATH"}`
	bugIDProp    = `"bug_id": {"type": "string", "pattern": "^[Bb][Uu][Gg]-[0-9]{1,9}$", "description": "Bug id within the project, e.g. BUG-001"}`
	statusEnum   = `"enum": ["open", "in_progress", "resolved", "closed"]`
	priorityEnum = `"enum": ["low", "medium", "high", "critical"]`
	tagsArray    = `"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 50}`
	limitProp    = `"limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "Bugs per page"}`
	cursorProp   = `"cursor": {"type": "string", "minLength": 1, "maxLength": 200, "description": "next_cursor of the previous page"}`
)

const initSchema = `{
  "type": "object",
  "properties": {
    ` + projectPathProp + `
  },
  "additionalProperties": false
}`

const addSchema = `{
  "type": "object",
  "properties": {
    "title": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "description": "Short summary of the bug"},
    "description": {"type": "string", "maxLength": 10000, "description": "Details: steps to reproduce, expected and actual behaviour"},
    "priority": {"type": "string", ` + priorityEnum + `, "default": "medium"},
    "tags": {` + tagsArray + `, "description": "Labels, e.g. ui, auth (stored lower-case)"},
    ` + projectPathProp + `
  },
  "required": ["title"],
  "additionalProperties": false
}`

const getSchema = `{
  "type": "object",
  "properties": {
    ` + bugIDProp + `,
    ` + projectPathProp + `
  },
  "required": ["bug_id"],
  "additionalProperties": false
}`

const updateSchema = `{
  "type": "object",
  "properties": {
    ` + bugIDProp + `,
    "status": {"type": "string", ` + statusEnum + `},
    "priority": {"type": "string", ` + priorityEnum + `},
    "tags": {` + tagsArray + `, "description": "New tags; replaces the current ones"},
    "related_bugs": {
      "type": "array", "maxItems": 50,
      "description": "Related bugs of the same project; replaces the current links, and the other bugs get the inverse link",
      "items": {
        "type": "object",
        "properties": {
          ` + bugIDProp + `,
          "relationship": {"type": "string", "enum": ["duplicate_of", "duplicated_by", "related_to", "blocks", "blocked_by"]}
        },
        "required": ["bug_id", "relationship"],
        "additionalProperties": false
      }
    },
    "note": {"type": "string", "maxLength": 10000, "description": "Progress note recorded in the history"},
    ` + projectPathProp + `
  },
  "required": ["bug_id"],
  "additionalProperties": false
}`

const closeSchema = `{
  "type": "object",
  "properties": {
    ` + bugIDProp + `,
    "resolution": {"type": "string", "maxLength": 10000, "description": "How the bug was resolved; recorded as the history note"},
    ` + projectPathProp + `
  },
  "required": ["bug_id"],
  "additionalProperties": false
}`

const listSchema = `{
  "type": "object",
  "properties": {
    "status": {"type": "string", ` + statusEnum + `},
    "priority": {"type": "string", ` + priorityEnum + `},
    "tags": {` + tagsArray + `, "description": "Only bugs having all of these tags"},
    ` + projectPathProp + `,
    ` + limitProp + `,
    ` + cursorProp + `
  },
  "additionalProperties": false
}`

const searchSchema = `{
  "type": "object",
  "properties": {
    "query": {"type": "string", "minLength": 1, "maxLength": 500, "description": "Words to find in titles, descriptions and notes; every word must occur (English word forms match: crashes finds crash)"},
    "status": {"type": "string", ` + statusEnum + `},
    "priority": {"type": "string", ` + priorityEnum + `},
    "tags": {` + tagsArray + `, "description": "Only bugs having all of these tags"},
    ` + limitProp + `,
    ` + cursorProp + `
  },
  "additionalProperties": false
}`

// No output schemas: the server's own error results (a policy denial)
// carry structuredContent of another shape, and clients that check
// structuredContent against a tool's output schema would reject those.

// Category, aliases and intents shared by the tools.
const category = "bugtracker"

var trackIntents = []string{"track"}

func (t *tracker) Tools() []plugin.Tool {
	no := false
	local := func(readOnly, idempotent bool) *plugin.Annotations {
		// Nothing is ever deleted: closing a bug is a recorded change.
		return &plugin.Annotations{ReadOnlyHint: readOnly, IdempotentHint: idempotent, DestructiveHint: &no, OpenWorldHint: &no}
	}
	hints := map[string]*plugin.Annotations{
		"init_bugtracker": local(false, true), "add_bug": local(false, false), "get_bug": local(true, true),
		"update_bug": local(false, false), "close_bug": local(false, true), "list_bugs": local(true, true),
		"search_bugs_global": local(true, true),
	}
	tool := func(name, title, desc string, aliases []string, in string, h plugin.Handler) plugin.Tool {
		return plugin.Tool{
			Name: name, Title: title, Description: desc, Category: category,
			Aliases: aliases, Intents: trackIntents,
			InputSchema: json.RawMessage(in),
			Annotations: hints[name],
			Handler:     t.safe(name, h),
		}
	}
	return []plugin.Tool{
		tool("init_bugtracker", "Initialise bug tracking",
			"Register a project directory with the local bug tracker (idempotent). Returns the project id, its canonical path and the database location.",
			[]string{"issue tracker", "ticket tracker", "setup bugs", "bugtracker"}, initSchema, t.initBugtracker),
		tool("add_bug", "Add a bug",
			"File a new bug (issue, ticket) in a project; ids are BUG-001, BUG-002, ... per project.",
			[]string{"issue", "ticket", "report bug", "file bug", "create issue", "new ticket"}, addSchema, t.addBug),
		tool("get_bug", "Get a bug",
			"Show one bug of a project with its tags, related bugs and full change history.",
			[]string{"issue", "ticket", "show bug", "bug details", "bug history"}, getSchema, t.getBug),
		tool("update_bug", "Update a bug",
			"Change a bug's status, priority, tags or related bugs, or add a progress note; every change is recorded in its history.",
			[]string{"issue", "ticket", "edit bug", "link bugs", "reopen", "progress note"}, updateSchema, t.updateBug),
		tool("close_bug", "Close a bug",
			"Close a bug with an optional resolution, recorded in its history. Reopen with update_bug.",
			[]string{"issue", "ticket", "resolve bug", "fix bug", "done"}, closeSchema, t.closeBug),
		tool("list_bugs", "List bugs",
			"List a project's bugs, newest first, filtered by status, priority and tags; paginated with next_cursor.",
			[]string{"issues", "tickets", "open bugs", "backlog"}, listSchema, t.listBugs),
		tool("search_bugs_global", "Search bugs in all projects",
			"Search the bugs of every registered project by words in title, description and notes, and by status, priority and tags; newest first, paginated.",
			[]string{"issues", "tickets", "find bug", "search issues", "full text"}, searchSchema, t.searchBugs),
	}
}
