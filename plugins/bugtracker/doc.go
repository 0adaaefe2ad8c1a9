// Package bugtracker serves a local bug tracker shared by all of a user's
// projects: init_bugtracker, add_bug, get_bug, update_bug, close_bug,
// list_bugs and search_bugs_global, over one SQLite database
// (modernc.org/sqlite, no cgo).
//
// # Projects
//
// A call names its project with project_path, else the MCP_PROJECT_PATH
// environment variable of the server; with neither, it is an error. A
// relative project_path is resolved against MCP_PROJECT_PATH, never
// against the server's working directory. The path goes through the
// host's filesystem door (operation list): the filesystem policy decides
// and audits it, symlinks are resolved, and it must be an existing
// directory. A project outside the allowed paths is denied by the server.
// Projects are keyed by that canonical path; a bug id is always looked up
// within one project, so BUG-001 of one project is never another's.
//
// init_bugtracker registers a project and is idempotent; add_bug
// registers its project too. The other per-project tools need a
// registered project.
//
// # Bugs
//
// Ids are BUG-001, BUG-002, ... (BUG-1000 after BUG-999), sequential per
// project: add_bug takes the next number from the project's counter in
// the transaction that stores the bug, so concurrent calls get distinct,
// gapless ids, and since bugs are never deleted no id is reused.
//
// Status is one of open, in_progress, resolved (fixed, awaiting
// confirmation) and closed; priority one of low, medium (the default),
// high and critical. Tags are trimmed, lower-cased, de-duplicated and
// sorted. close_bug sets closed and records its resolution; closing a
// closed bug is an error. Reopening is update_bug with another status,
// which clears the resolution (it stays in the history).
//
// update_bug writes a history entry {timestamp, changes: {field: [old,
// new]}, note} only when a value changed or a note was given. tags and
// related_bugs replace the current ones. A related bug must exist in the
// same project and every link has its inverse on the other bug (blocks ↔
// blocked_by, duplicate_of ↔ duplicated_by, related_to ↔ related_to); a
// bug whose links change that way gets a history entry of its own.
//
// # Listing and search
//
// list_bugs and search_bugs_global return bugs newest first, limit per
// page (1–100, default 20), with next_cursor when there are more. The
// cursor is opaque (base64url of the last bug's row and a fingerprint of
// the filters) and only valid for the query that produced it. Tags filter
// all-of. search_bugs_global's query is full text over title, description
// and history notes with SQLite FTS5, which the driver includes (so no
// fallback is needed): the text is split into words, diacritics are
// folded and English words are stemmed (Porter), and every word of the
// query must occur in a bug, in any form with the same stem ("crashes"
// finds "crash" and "crashing"). FTS5 syntax in the query is not
// interpreted; quotes, operators and punctuation are plain text.
//
// # Storage
//
// The database is the policy's plugins.bugtracker.database if set, else
// $MCP_SECURE_BUGTRACKER_DB, else bugs.db in the server's data directory
// for the plugin ($XDG_DATA_HOME/mcp-secure/bugtracker/bugs.db). The
// policy wins over the environment because the policy is the operator's
// word. A configured path must be absolute. The file is created 0600.
//
// It is opened on the first call that needs it, in WAL mode, with
// foreign keys on and a busy timeout of five seconds. Writes go through
// one connection in IMMEDIATE transactions, one per call; reads use a
// small pool of query-only connections, which WAL lets run alongside a
// write. Statements are prepared once per connection.
//
// plugins.bugtracker.synchronous sets how hard each commit reaches the
// disk: "normal" (the default, SQLite's recommendation for WAL) never
// corrupts the database and loses nothing when the server crashes, but a
// power failure or kernel crash may undo the last commits; "full" adds an
// fsync to every write, which survives that too and makes each write
// about a millisecond slower.
//
// The schema carries its version in schema_version and is brought
// forward by numbered migrations, each in its own transaction (v1: tables
// and per-project indexes; v2: the FTS5 index, contentless since the bugs
// table holds the text, filled from existing bugs, and the cross-project
// indexes). A database from a newer release, or one holding other tables,
// is refused untouched.
//
// A locked, read-only, corrupt or full database, or one that cannot be
// opened, gives an error result saying so; the transaction is rolled back,
// the file is left as it was, and the next call tries again. Handlers do
// not panic: an unexpected panic is recovered and reported as an error
// result.
package bugtracker
