package bugtracker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Project is a registered project.
type Project struct {
	ID   int64  `json:"project_id"`
	Path string `json:"project_path"`
	// Created reports this call registered it.
	Created  bool `json:"created"`
	BugCount int  `json:"bug_count"`
}

// initProject registers path (idempotently).
func (s *store) initProject(ctx context.Context, path, at string) (*Project, error) {
	p := &Project{Path: path}
	err := s.write(ctx, func(tx dbtx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO projects (path, created_at) VALUES (?, ?) ON CONFLICT (path) DO NOTHING`, path, at)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		p.Created = n == 1
		return tx.QueryRowContext(ctx, `SELECT id, (SELECT count(*) FROM bugs WHERE project_id = projects.id) FROM projects WHERE path = ?`, path).Scan(&p.ID, &p.BugCount)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// newBug is what add_bug stores.
type newBug struct {
	title, description, priority string
	tags                         []string
}

// addBug registers the project if needed and stores a bug under the
// project's next sequence number, taken from its counter inside the
// same transaction: ids are sequential and, since the counter only
// grows, never reused.
func (s *store) addBug(ctx context.Context, path string, nb newBug, at string) (*Bug, error) {
	var bug *Bug
	err := s.write(ctx, func(tx dbtx) error {
		var pid, seq int64
		err := tx.QueryRowContext(ctx, `INSERT INTO projects (path, created_at, next_seq) VALUES (?, ?, 2)
			ON CONFLICT (path) DO UPDATE SET next_seq = next_seq + 1
			RETURNING id, next_seq - 1`, path, at).Scan(&pid, &seq)
		if err != nil {
			return err
		}
		var rowid int64
		err = tx.QueryRowContext(ctx, `INSERT INTO bugs (project_id, seq, title, description, priority, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, pid, seq, nb.title, nb.description, nb.priority, at, at).Scan(&rowid)
		if err != nil {
			return err
		}
		if err := setTags(ctx, tx, pid, rowid, nb.tags); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO bugs_fts (rowid, title, description, notes) VALUES (?, ?, ?, '')`, rowid, nb.title, nb.description); err != nil {
			return err
		}
		bug = &Bug{
			ID: formatID(seq), ProjectPath: path, Title: nb.title, Description: nb.description,
			Status: StatusOpen, Priority: nb.priority, Tags: nb.tags, RelatedBugs: []Link{},
			CreatedAt: at, UpdatedAt: at, History: []HistoryEntry{},
		}
		return nil
	})
	return bug, err
}

func setTags(ctx context.Context, tx dbtx, pid, rowid int64, tags []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM bug_tags WHERE bug_id = ?`, rowid); err != nil {
		return err
	}
	for _, t := range tags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bug_tags (bug_id, project_id, tag) VALUES (?, ?, ?)`, rowid, pid, t); err != nil {
			return err
		}
	}
	return nil
}

// projectID finds a registered project.
func projectID(ctx context.Context, q dbtx, path string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM projects WHERE path = ?`, path).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%s: %w", path, ErrNotInitialised)
	}
	return id, err
}

// bugRowID finds a bug of a project by its sequence number.
func bugRowID(ctx context.Context, q dbtx, pid, seq int64) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM bugs WHERE project_id = ? AND seq = ?`, pid, seq).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%s: %w", formatID(seq), ErrBugNotFound)
	}
	return id, err
}

// getBug reads a bug with its history, from one snapshot.
func (s *store) getBug(ctx context.Context, path string, seq int64) (*Bug, error) {
	var bug *Bug
	err := s.read(ctx, func(tx dbtx) error {
		pid, err := projectID(ctx, tx, path)
		if err != nil {
			return err
		}
		bug, _, err = loadBug(ctx, tx, pid, path, seq, true)
		return err
	})
	return bug, err
}

// loadBug reads a bug, its tags and links and, if asked, its history.
func loadBug(ctx context.Context, q dbtx, pid int64, path string, seq int64, history bool) (*Bug, int64, error) {
	rowid, err := bugRowID(ctx, q, pid, seq)
	if err != nil {
		return nil, 0, err
	}
	b := &Bug{ID: formatID(seq), ProjectPath: path, History: []HistoryEntry{}}
	err = q.QueryRowContext(ctx, `SELECT title, description, status, priority, resolution, created_at, updated_at FROM bugs WHERE id = ?`, rowid).
		Scan(&b.Title, &b.Description, &b.Status, &b.Priority, &b.Resolution, &b.CreatedAt, &b.UpdatedAt)
	if err != nil {
		return nil, 0, err
	}
	if b.Tags, err = loadTags(ctx, q, rowid); err != nil {
		return nil, 0, err
	}
	if b.RelatedBugs, err = loadLinks(ctx, q, rowid); err != nil {
		return nil, 0, err
	}
	if history {
		if b.History, err = loadHistory(ctx, q, rowid); err != nil {
			return nil, 0, err
		}
	}
	return b, rowid, nil
}

func loadTags(ctx context.Context, q dbtx, rowid int64) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT tag FROM bug_tags WHERE bug_id = ? ORDER BY tag`, rowid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tags := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		tags = append(tags, t)
	}
	return tags, rows.Err()
}

// loadLinks lists a bug's links, ordered by the other bug's id.
func loadLinks(ctx context.Context, q dbtx, rowid int64) ([]Link, error) {
	rows, err := q.QueryContext(ctx, `SELECT o.seq, l.relationship FROM bug_links l JOIN bugs o ON o.id = l.other_id
		WHERE l.bug_id = ? ORDER BY o.seq`, rowid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	links := []Link{}
	for rows.Next() {
		var seq int64
		var rel string
		if err := rows.Scan(&seq, &rel); err != nil {
			return nil, err
		}
		links = append(links, Link{BugID: formatID(seq), Relationship: rel})
	}
	return links, rows.Err()
}

func loadHistory(ctx context.Context, q dbtx, rowid int64) ([]HistoryEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT at, changes, note FROM bug_history WHERE bug_id = ? ORDER BY id`, rowid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []HistoryEntry{}
	for rows.Next() {
		var h HistoryEntry
		var changes string
		if err := rows.Scan(&h.Timestamp, &changes, &h.Note); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(changes), &h.Changes); err != nil {
			return nil, fmt.Errorf("history of bug %d: %w", rowid, err)
		}
		if h.Changes == nil {
			h.Changes = map[string][2]any{}
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// change is an update_bug or close_bug request; nil fields are left as
// they are.
type change struct {
	status, priority, resolution *string
	tags                         []string // nil: unchanged
	links                        []Link   // nil: unchanged
	note                         string
	closing                      bool // close_bug: an already closed bug is an error
}

// Updated is the outcome of update_bug and close_bug.
type Updated struct {
	Bug *Bug `json:"bug"`
	// Recorded reports a history entry was written: something changed or
	// a note was given.
	Recorded bool `json:"recorded"`
	// Changes are the fields that changed, each [old, new].
	Changes map[string][2]any `json:"changes"`
}

// updateBug applies c to a bug in one transaction: the fields, the links
// with their inverses on the other bugs, a history entry on every bug
// that changed, and the search index.
func (s *store) updateBug(ctx context.Context, path string, seq int64, c change, at string) (*Updated, error) {
	var out *Updated
	err := s.write(ctx, func(tx dbtx) error {
		pid, err := projectID(ctx, tx, path)
		if err != nil {
			return err
		}
		cur, rowid, err := loadBug(ctx, tx, pid, path, seq, false)
		if err != nil {
			return err
		}
		if c.closing && cur.Status == StatusClosed {
			return fmt.Errorf("%s: %w", cur.ID, ErrAlreadyClosed)
		}
		changes := map[string][2]any{}
		status, priority, resolution := cur.Status, cur.Priority, cur.Resolution
		if c.status != nil && *c.status != cur.Status {
			status = *c.status
			changes["status"] = [2]any{cur.Status, status}
		}
		if c.resolution != nil {
			resolution = *c.resolution
		} else if cur.Status == StatusClosed && status != StatusClosed {
			resolution = "" // reopened: the old resolution stays in the history
		}
		if resolution != cur.Resolution {
			changes["resolution"] = [2]any{cur.Resolution, resolution}
		}
		if c.priority != nil && *c.priority != cur.Priority {
			priority = *c.priority
			changes["priority"] = [2]any{cur.Priority, priority}
		}
		if c.tags != nil && !slices.Equal(c.tags, cur.Tags) {
			changes["tags"] = [2]any{cur.Tags, c.tags}
			if err := setTags(ctx, tx, pid, rowid, c.tags); err != nil {
				return err
			}
		}
		if c.links != nil {
			links, err := relink(ctx, tx, pid, seq, rowid, cur.RelatedBugs, c.links, at)
			if err != nil {
				return err
			}
			if !slices.Equal(links, cur.RelatedBugs) {
				changes["related_bugs"] = [2]any{cur.RelatedBugs, links}
			}
		}
		out = &Updated{Changes: changes}
		if len(changes) > 0 || c.note != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE bugs SET status = ?, priority = ?, resolution = ?, updated_at = ? WHERE id = ?`,
				status, priority, resolution, at, rowid); err != nil {
				return err
			}
			if err := addHistory(ctx, tx, rowid, at, changes, c.note); err != nil {
				return err
			}
			out.Recorded = true
		}
		out.Bug, _, err = loadBug(ctx, tx, pid, path, seq, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// addHistory records an entry and, when it carries a note, re-indexes
// the bug's notes for full-text search.
func addHistory(ctx context.Context, tx dbtx, rowid int64, at string, changes map[string][2]any, note string) error {
	js, err := json.Marshal(changes)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO bug_history (bug_id, at, changes, note) VALUES (?, ?, ?, ?)`, rowid, at, string(js), note); err != nil {
		return err
	}
	if note == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM bugs_fts WHERE rowid = ?`, rowid); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO bugs_fts (rowid, title, description, notes)
		SELECT b.id, b.title, b.description,
		       coalesce((SELECT group_concat(h.note, ' ') FROM bug_history h WHERE h.bug_id = b.id AND h.note <> ''), '')
		FROM bugs b WHERE b.id = ?`, rowid)
	return err
}

// relink replaces a bug's links with want and keeps the other side of
// every link in step (blocks ↔ blocked_by, duplicate_of ↔ duplicated_by,
// related_to ↔ related_to). Each other bug whose links change gets a
// history entry naming the bug that changed them. It returns the bug's
// new links, ordered by id.
func relink(ctx context.Context, tx dbtx, pid, seq, rowid int64, have, want []Link, at string) ([]Link, error) {
	id := formatID(seq)
	target := map[int64]string{} // other bug's seq → relationship
	for _, l := range want {
		other, err := parseID(l.BugID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRelation, err)
		}
		if _, ok := inverse[l.Relationship]; !ok {
			return nil, fmt.Errorf("%w: relationship %q is not one of %v", ErrBadRelation, l.Relationship, Relationships)
		}
		if other == seq {
			return nil, fmt.Errorf("%w: %s cannot be related to itself", ErrBadRelation, id)
		}
		if _, dup := target[other]; dup {
			return nil, fmt.Errorf("%w: %s is listed twice", ErrBadRelation, formatID(other))
		}
		target[other] = l.Relationship
	}
	current := map[int64]string{}
	for _, l := range have {
		other, err := parseID(l.BugID)
		if err != nil {
			return nil, err
		}
		current[other] = l.Relationship
	}
	seqs := slices.Sorted(maps.Keys(target))
	for _, other := range slices.Sorted(maps.Keys(current)) {
		if _, ok := target[other]; !ok {
			seqs = append(seqs, other)
		}
	}
	for _, other := range seqs {
		rel, keep := target[other]
		if keep && current[other] == rel {
			continue
		}
		orow, err := bugRowID(ctx, tx, pid, other)
		if errors.Is(err, ErrBugNotFound) {
			return nil, fmt.Errorf("%w: %s does not exist in this project", ErrBadRelation, formatID(other))
		}
		if err != nil {
			return nil, err
		}
		before, err := loadLinks(ctx, tx, orow)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM bug_links WHERE (bug_id = ? AND other_id = ?) OR (bug_id = ? AND other_id = ?)`, rowid, orow, orow, rowid); err != nil {
			return nil, err
		}
		if keep {
			if _, err := tx.ExecContext(ctx, `INSERT INTO bug_links (bug_id, other_id, relationship) VALUES (?, ?, ?), (?, ?, ?)`,
				rowid, orow, rel, orow, rowid, inverse[rel]); err != nil {
				return nil, err
			}
		}
		after, err := loadLinks(ctx, tx, orow)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(before, after) {
			if _, err := tx.ExecContext(ctx, `UPDATE bugs SET updated_at = ? WHERE id = ?`, at, orow); err != nil {
				return nil, err
			}
			if err := addHistory(ctx, tx, orow, at, map[string][2]any{"related_bugs": {before, after}}, ""); err != nil {
				return nil, err
			}
		}
	}
	return loadLinks(ctx, tx, rowid)
}
