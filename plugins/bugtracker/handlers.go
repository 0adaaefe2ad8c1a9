package bugtracker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// decode reads a call's arguments. The server has validated them
// against the schema; the handlers still check what they rely on.
func decode(call *plugin.Call, v any) error {
	raw := call.Arguments
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadArgument, err)
	}
	return nil
}

func checkText(field, v string, limit int) error {
	if utf8.RuneCountInString(v) > limit {
		return fmt.Errorf("%w: %s is longer than %d characters", ErrBadArgument, field, limit)
	}
	return nil
}

// InitResult is what init_bugtracker returns.
type InitResult struct {
	Project
	Database      string `json:"database"`
	SchemaVersion int    `json:"schema_version"`
}

func (t *tracker) initBugtracker(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	const tool = "init_bugtracker"
	var a struct {
		ProjectPath string `json:"project_path"`
	}
	if err := decode(call, &a); err != nil {
		return t.fail(tool, err)
	}
	path, err := t.resolveProject(ctx, a.ProjectPath)
	if err != nil {
		return t.fail(tool, err)
	}
	st, err := t.store(ctx)
	if err != nil {
		return t.fail(tool, err)
	}
	p, err := st.initProject(ctx, path, t.timestamp())
	if err != nil {
		return t.fail(tool, err)
	}
	res := &InitResult{Project: *p, Database: st.path, SchemaVersion: st.version}
	return &plugin.Result{Text: formatInit(res), Structured: res}, nil
}

func (t *tracker) addBug(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	const tool = "add_bug"
	var a struct {
		Title       string   `json:"title"`
		Description string   `json:"description"`
		Priority    string   `json:"priority"`
		Tags        []string `json:"tags"`
		ProjectPath string   `json:"project_path"`
	}
	if err := decode(call, &a); err != nil {
		return t.fail(tool, err)
	}
	nb := newBug{title: strings.TrimSpace(a.Title), description: strings.TrimSpace(a.Description), priority: cmpOr(a.Priority, DefaultPriority)}
	var err error
	switch {
	case nb.title == "":
		err = fmt.Errorf("%w: title is required and must not be blank", ErrBadArgument)
	case utf8.RuneCountInString(nb.title) > maxTitle:
		err = fmt.Errorf("%w: title is longer than %d characters", ErrBadArgument, maxTitle)
	default:
		err = checkText("description", nb.description, maxText)
	}
	if err == nil {
		err = oneOf("priority", nb.priority, Priorities)
	}
	if err == nil {
		nb.tags, err = normalizeTags(a.Tags)
	}
	if err != nil {
		return t.fail(tool, err)
	}
	path, err := t.resolveProject(ctx, a.ProjectPath)
	if err != nil {
		return t.fail(tool, err)
	}
	st, err := t.store(ctx)
	if err != nil {
		return t.fail(tool, err)
	}
	bug, err := st.addBug(ctx, path, nb, t.timestamp())
	if err != nil {
		return t.fail(tool, err)
	}
	return &plugin.Result{Text: "Added " + formatBug(bug, false), Structured: bug}, nil
}

func (t *tracker) getBug(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	const tool = "get_bug"
	var a struct {
		BugID       string `json:"bug_id"`
		ProjectPath string `json:"project_path"`
	}
	if err := decode(call, &a); err != nil {
		return t.fail(tool, err)
	}
	seq, err := parseID(a.BugID)
	if err != nil {
		return t.fail(tool, err)
	}
	path, err := t.resolveProject(ctx, a.ProjectPath)
	if err != nil {
		return t.fail(tool, err)
	}
	st, err := t.store(ctx)
	if err != nil {
		return t.fail(tool, err)
	}
	bug, err := st.getBug(ctx, path, seq)
	if err != nil {
		return t.fail(tool, err)
	}
	return &plugin.Result{Text: formatBug(bug, true), Structured: bug}, nil
}

func (t *tracker) updateBug(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	const tool = "update_bug"
	var a struct {
		BugID       string    `json:"bug_id"`
		Status      *string   `json:"status"`
		Priority    *string   `json:"priority"`
		Tags        *[]string `json:"tags"`
		RelatedBugs *[]Link   `json:"related_bugs"`
		Note        string    `json:"note"`
		ProjectPath string    `json:"project_path"`
	}
	if err := decode(call, &a); err != nil {
		return t.fail(tool, err)
	}
	seq, err := parseID(a.BugID)
	if err != nil {
		return t.fail(tool, err)
	}
	c := change{status: a.Status, priority: a.Priority, note: strings.TrimSpace(a.Note)}
	if a.Status != nil {
		err = oneOf("status", cmpOr(*a.Status, "(empty)"), Statuses)
	}
	if err == nil && a.Priority != nil {
		err = oneOf("priority", cmpOr(*a.Priority, "(empty)"), Priorities)
	}
	if err == nil {
		err = checkText("note", c.note, maxText)
	}
	if err == nil && a.Tags != nil {
		c.tags, err = normalizeTags(*a.Tags)
	}
	if err == nil && a.RelatedBugs != nil {
		c.links = append([]Link{}, *a.RelatedBugs...)
	}
	if err == nil && a.Status == nil && a.Priority == nil && a.Tags == nil && a.RelatedBugs == nil && c.note == "" {
		err = ErrNothingToUpdate
	}
	if err != nil {
		return t.fail(tool, err)
	}
	return t.change(ctx, tool, seq, a.ProjectPath, c)
}

func (t *tracker) closeBug(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	const tool = "close_bug"
	var a struct {
		BugID       string `json:"bug_id"`
		Resolution  string `json:"resolution"`
		ProjectPath string `json:"project_path"`
	}
	if err := decode(call, &a); err != nil {
		return t.fail(tool, err)
	}
	seq, err := parseID(a.BugID)
	if err != nil {
		return t.fail(tool, err)
	}
	resolution := strings.TrimSpace(a.Resolution)
	if err := checkText("resolution", resolution, maxText); err != nil {
		return t.fail(tool, err)
	}
	closed := StatusClosed
	return t.change(ctx, tool, seq, a.ProjectPath, change{status: &closed, resolution: &resolution, note: resolution, closing: true})
}

// change runs update_bug and close_bug once their arguments are checked.
func (t *tracker) change(ctx context.Context, tool string, seq int64, project string, c change) (*plugin.Result, error) {
	path, err := t.resolveProject(ctx, project)
	if err != nil {
		return t.fail(tool, err)
	}
	st, err := t.store(ctx)
	if err != nil {
		return t.fail(tool, err)
	}
	u, err := st.updateBug(ctx, path, seq, c, t.timestamp())
	if err != nil {
		return t.fail(tool, err)
	}
	return &plugin.Result{Text: formatUpdated(tool, u), Structured: u}, nil
}

type listArgs struct {
	Status      string   `json:"status"`
	Priority    string   `json:"priority"`
	Tags        []string `json:"tags"`
	ProjectPath string   `json:"project_path"`
	Query       string   `json:"query"`
	Limit       int      `json:"limit"`
	Cursor      string   `json:"cursor"`
}

// filter checks the common arguments of list_bugs and
// search_bugs_global.
func (a *listArgs) filter() (*filter, error) {
	f := &filter{status: a.Status, priority: a.Priority, limit: a.Limit, cursor: strings.TrimSpace(a.Cursor), query: strings.TrimSpace(a.Query)}
	if err := oneOf("status", a.Status, Statuses); err != nil {
		return nil, err
	}
	if err := oneOf("priority", a.Priority, Priorities); err != nil {
		return nil, err
	}
	if f.limit < 0 || f.limit > maxLimit {
		return nil, fmt.Errorf("%w: limit must be between 1 and %d", ErrBadArgument, maxLimit)
	}
	var err error
	if f.tags, err = normalizeTags(a.Tags); err != nil {
		return nil, err
	}
	if f.query != "" {
		if err := checkText("query", f.query, 500); err != nil {
			return nil, err
		}
		if f.match, err = matchExpr(f.query); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (t *tracker) listBugs(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	const tool = "list_bugs"
	var a listArgs
	if err := decode(call, &a); err != nil {
		return t.fail(tool, err)
	}
	a.Query = "" // not an argument of list_bugs
	f, err := a.filter()
	if err != nil {
		return t.fail(tool, err)
	}
	if f.project, err = t.resolveProject(ctx, a.ProjectPath); err != nil {
		return t.fail(tool, err)
	}
	st, err := t.store(ctx)
	if err != nil {
		return t.fail(tool, err)
	}
	page, err := st.list(ctx, f)
	if err != nil {
		return t.fail(tool, err)
	}
	return &plugin.Result{Text: formatPage(page, f), Structured: page}, nil
}

func (t *tracker) searchBugs(ctx context.Context, call *plugin.Call) (*plugin.Result, error) {
	const tool = "search_bugs_global"
	var a listArgs
	if err := decode(call, &a); err != nil {
		return t.fail(tool, err)
	}
	a.ProjectPath = "" // not an argument of search_bugs_global
	f, err := a.filter()
	if err != nil {
		return t.fail(tool, err)
	}
	// Only the projects the filesystem policy lets this call list now:
	// narrowing the policy hides what was recorded under it before.
	files := t.host.Files()
	f.visible = func(path string) bool { return files.Check(ctx, path, plugin.OpList) == nil }
	st, err := t.store(ctx)
	if err != nil {
		return t.fail(tool, err)
	}
	page, err := st.list(ctx, f)
	if err != nil {
		return t.fail(tool, err)
	}
	return &plugin.Result{Text: formatPage(page, f), Structured: page}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
