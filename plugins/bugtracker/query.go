package bugtracker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Page sizes.
const (
	defaultLimit = 20
	maxLimit     = 100
)

// filter selects bugs for list_bugs (one project) and search_bugs_global
// (all projects).
type filter struct {
	project string // canonical path; "" means every project
	// visible, when not nil, limits an every-project search to the
	// projects the filesystem policy allows now; a project not in it is
	// left out even if its path is not decided again.
	visible  func(path string) bool
	status   string
	priority string
	tags     []string // all of them (normalised)
	query    string   // the caller's text, for the cursor
	match    string   // FTS5 expression built from query
	limit    int
	cursor   string
}

// Page is one page of bugs, newest first.
type Page struct {
	ProjectPath string    `json:"project_path,omitempty"`
	Query       string    `json:"query,omitempty"`
	Count       int       `json:"count"`
	Bugs        []Summary `json:"bugs"`
	// NextCursor, when set, fetches the next page of the same query.
	NextCursor string `json:"next_cursor,omitempty"`
}

// fingerprint ties a cursor to the query it came from.
func (f *filter) fingerprint() string {
	h := fnv.New64a()
	for _, part := range append([]string{f.project, f.status, f.priority, f.query}, f.tags...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// Cursors are opaque to callers: base64url of "v1.<rowid>.<fingerprint>",
// the last bug of the previous page and the query it belongs to.
func (f *filter) encodeCursor(rowid int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1." + strconv.FormatInt(rowid, 10) + "." + f.fingerprint()))
}

func (f *filter) decodeCursor() (int64, error) {
	if f.cursor == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(f.cursor)
	if err != nil {
		return 0, ErrBadCursor
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 || parts[0] != "v1" || parts[2] != f.fingerprint() {
		return 0, ErrBadCursor
	}
	rowid, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || rowid < 1 {
		return 0, ErrBadCursor
	}
	return rowid, nil
}

// Full-text queries are words, not FTS5 syntax: every run of letters and
// digits is a term, quoted so FTS5 reads it as a plain string, and each
// term must occur in the title, description or notes (the index's
// tokenizer stems both sides).
const maxTerms = 16

func matchExpr(query string) (string, error) {
	terms := strings.FieldsFunc(strings.ToLower(query), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	if len(terms) == 0 {
		return "", fmt.Errorf("%w: query %q has no words to search for", ErrBadArgument, query)
	}
	if len(terms) > maxTerms {
		return "", fmt.Errorf("%w: query has more than %d words", ErrBadArgument, maxTerms)
	}
	for i, t := range terms {
		terms[i] = `"` + t + `"`
	}
	return strings.Join(terms, " "), nil
}

// listSQL builds the query of one page: the bugs f selects in project
// pid (0: every project) after the cursor's row, newest first, one more
// than limit to tell whether there is a next page.
func listSQL(f *filter, pid int64, only []int64, after int64, limit int) (string, []any) {
	var (
		sb   strings.Builder
		args []any
	)
	sb.WriteString(`SELECT b.id, p.path, b.seq, b.title, b.status, b.priority, b.created_at, b.updated_at,
		(SELECT json_group_array(tag) FROM bug_tags WHERE bug_id = b.id)`)
	// Each form walks an index in bug order, newest first, so a page
	// stops as soon as it is full.
	order, tags := "b.id", f.tags
	switch {
	case f.match != "":
		order = "bugs_fts.rowid"
		sb.WriteString(` FROM bugs_fts JOIN bugs b ON b.id = bugs_fts.rowid JOIN projects p ON p.id = b.project_id WHERE bugs_fts MATCH ?`)
		args = append(args, f.match)
	case len(tags) > 0:
		// The first tag's index (per project, or across projects) finds
		// the bugs carrying it without reading the others.
		order = "t0.bug_id"
		sb.WriteString(` FROM bug_tags t0 CROSS JOIN bugs b ON b.id = t0.bug_id JOIN projects p ON p.id = b.project_id WHERE t0.tag = ?`)
		args = append(args, tags[0])
		if pid != 0 {
			sb.WriteString(" AND t0.project_id = ?")
			args = append(args, pid)
		}
		tags = tags[1:]
	default:
		sb.WriteString(` FROM bugs b JOIN projects p ON p.id = b.project_id WHERE 1`)
	}
	if pid != 0 {
		sb.WriteString(" AND b.project_id = ?")
		args = append(args, pid)
	}
	if len(only) > 0 {
		sb.WriteString(" AND b.project_id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(only)), ",") + ")")
		for _, id := range only {
			args = append(args, id)
		}
	}
	if after > 0 {
		sb.WriteString(" AND " + order + " < ?")
		args = append(args, after)
	}
	if f.status != "" {
		sb.WriteString(" AND b.status = ?")
		args = append(args, f.status)
	}
	if f.priority != "" {
		sb.WriteString(" AND b.priority = ?")
		args = append(args, f.priority)
	}
	for _, t := range tags {
		sb.WriteString(" AND EXISTS (SELECT 1 FROM bug_tags t WHERE t.bug_id = b.id AND t.tag = ?)")
		args = append(args, t)
	}
	sb.WriteString(" ORDER BY " + order + " DESC LIMIT ?")
	args = append(args, limit+1)
	return sb.String(), args
}

// visibleProjects returns the ids of the projects whose path visible
// accepts.
func visibleProjects(ctx context.Context, tx dbtx, visible func(string) bool) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, path FROM projects ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var (
			id   int64
			path string
		)
		if err := rows.Scan(&id, &path); err != nil {
			return nil, err
		}
		if visible(path) {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

// list returns one page of the bugs f selects, newest first.
func (s *store) list(ctx context.Context, f *filter) (*Page, error) {
	after, err := f.decodeCursor()
	if err != nil {
		return nil, err
	}
	limit := f.limit
	if limit <= 0 {
		limit = defaultLimit
	}
	page := &Page{Bugs: []Summary{}, ProjectPath: f.project, Query: f.query}
	err = s.read(ctx, func(tx dbtx) error {
		var pid int64
		if f.project != "" {
			if pid, err = projectID(ctx, tx, f.project); err != nil {
				return err
			}
		}
		var only []int64
		if f.project == "" && f.visible != nil {
			if only, err = visibleProjects(ctx, tx, f.visible); err != nil {
				return err
			}
			if len(only) == 0 {
				return nil
			}
		}
		q, args := listSQL(f, pid, only, after, limit)
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var last int64
		for rows.Next() {
			if len(page.Bugs) == limit {
				page.NextCursor = f.encodeCursor(last)
				break
			}
			var (
				b    Summary
				seq  int64
				tags string
			)
			if err := rows.Scan(&last, &b.ProjectPath, &seq, &b.Title, &b.Status, &b.Priority, &b.CreatedAt, &b.UpdatedAt, &tags); err != nil {
				return err
			}
			b.ID = formatID(seq)
			if err := json.Unmarshal([]byte(tags), &b.Tags); err != nil {
				return fmt.Errorf("tags of %s: %w", b.ID, err)
			}
			slices.Sort(b.Tags)
			page.Bugs = append(page.Bugs, b)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	page.Count = len(page.Bugs)
	return page, nil
}
