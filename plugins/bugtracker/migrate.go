package bugtracker

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the forward migrations of the schema; migrations[i]
// brings a database from version i to i+1. They only ever grow: a
// released migration is never edited.
var migrations = []string{
	// v1: projects, bugs, tags, links and history, with per-project
	// sequence counters and the indexes of the per-project filters.
	`
CREATE TABLE schema_version (
	version    INTEGER PRIMARY KEY,
	applied_at TEXT NOT NULL
);
CREATE TABLE projects (
	id         INTEGER PRIMARY KEY,
	path       TEXT NOT NULL UNIQUE,
	next_seq   INTEGER NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
	created_at TEXT NOT NULL
);
CREATE TABLE bugs (
	id          INTEGER PRIMARY KEY,
	project_id  INTEGER NOT NULL REFERENCES projects (id),
	seq         INTEGER NOT NULL CHECK (seq >= 1),
	title       TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL DEFAULT 'open'
	            CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
	priority    TEXT NOT NULL DEFAULT 'medium'
	            CHECK (priority IN ('low', 'medium', 'high', 'critical')),
	resolution  TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	UNIQUE (project_id, seq)
);
CREATE INDEX bugs_project ON bugs (project_id);
CREATE INDEX bugs_project_status ON bugs (project_id, status);
CREATE INDEX bugs_project_priority ON bugs (project_id, priority);
CREATE TABLE bug_tags (
	bug_id     INTEGER NOT NULL REFERENCES bugs (id),
	project_id INTEGER NOT NULL REFERENCES projects (id),
	tag        TEXT NOT NULL,
	PRIMARY KEY (bug_id, tag)
) WITHOUT ROWID;
CREATE INDEX bug_tags_project_tag ON bug_tags (project_id, tag, bug_id);
CREATE TABLE bug_links (
	bug_id       INTEGER NOT NULL REFERENCES bugs (id),
	other_id     INTEGER NOT NULL REFERENCES bugs (id),
	relationship TEXT NOT NULL
	             CHECK (relationship IN ('duplicate_of', 'duplicated_by', 'related_to', 'blocks', 'blocked_by')),
	PRIMARY KEY (bug_id, other_id),
	CHECK (bug_id <> other_id)
) WITHOUT ROWID;
CREATE INDEX bug_links_other ON bug_links (other_id);
CREATE TABLE bug_history (
	id      INTEGER PRIMARY KEY,
	bug_id  INTEGER NOT NULL REFERENCES bugs (id),
	at      TEXT NOT NULL,
	changes TEXT NOT NULL DEFAULT '{}',
	note    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX bug_history_bug ON bug_history (bug_id, id);
`,
	// v2: full-text search over title, description and history notes
	// (FTS5, keyed by the bug's rowid and filled from the existing bugs),
	// and the indexes of the cross-project filters.
	`
CREATE VIRTUAL TABLE bugs_fts USING fts5 (
	title, description, notes,
	content = '', contentless_delete = 1,
	tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO bugs_fts (rowid, title, description, notes)
	SELECT b.id, b.title, b.description,
	       coalesce((SELECT group_concat(h.note, ' ') FROM bug_history h WHERE h.bug_id = b.id AND h.note <> ''), '')
	FROM bugs b;
CREATE INDEX bugs_status ON bugs (status);
CREATE INDEX bugs_priority ON bugs (priority);
CREATE INDEX bug_tags_tag ON bug_tags (tag, bug_id);
`,
}

// schemaVersion is the version this code reads and writes.
var schemaVersion = len(migrations)

// migrate brings the database on db up to version target, one
// transaction per migration, and returns the version it is at. A
// database newer than this code is refused, untouched.
func migrate(ctx context.Context, db *sql.DB, target int) (int, error) {
	current, err := currentVersion(ctx, db)
	if err != nil {
		return 0, err
	}
	if current > len(migrations) {
		return current, fmt.Errorf("%w (schema version %d, this server knows up to %d); it was left untouched", ErrSchemaTooNew, current, len(migrations))
	}
	if current >= target {
		return current, nil
	}
	// WAL is a property of the file: set once, before the first table.
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return current, err
	}
	for v := current + 1; v <= target; v++ {
		err := func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			// Another process may have migrated while this one waited
			// for the write lock.
			have, err := currentVersion(ctx, tx)
			if err != nil {
				return err
			}
			if have >= v {
				return nil
			}
			if have != v-1 {
				return fmt.Errorf("%w: at %d, applying %d", errUnknownMigrations, have, v)
			}
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("schema migration to version %d: %w", v, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", v, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			return current, err
		}
		current = v
	}
	return current, nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const versionQuery = "SELECT coalesce(max(version), 0) FROM schema_version"

// currentVersion reads the schema version: 0 for an empty database. A
// database that holds tables but no version is someone else's and is
// refused.
func currentVersion(ctx context.Context, db querier) (int, error) {
	var hasVersion, tables int
	err := db.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE name = 'schema_version'),
		count(*) FILTER (WHERE name NOT LIKE 'sqlite_%')
		FROM sqlite_schema WHERE type = 'table'`).Scan(&hasVersion, &tables)
	if err != nil {
		return 0, err
	}
	if hasVersion == 0 {
		if tables > 0 {
			return 0, fmt.Errorf("%w: it holds tables but no schema_version; it is not a bug tracker database and was left untouched", ErrDatabaseUnusable)
		}
		return 0, nil
	}
	var v int
	if err := db.QueryRowContext(ctx, versionQuery).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}
