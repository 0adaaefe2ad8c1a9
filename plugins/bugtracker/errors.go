package bugtracker

import (
	"context"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors a caller can act on. Each is wrapped with the detail that names
// the bug, project or argument concerned; the handlers turn them into
// error results whose text is the wrapped message.
var (
	ErrNoProject         = errors.New("no project: pass project_path or set MCP_PROJECT_PATH")
	ErrBadProject        = errors.New("not a usable project directory")
	ErrNotInitialised    = errors.New("bug tracking is not initialised for this project; call init_bugtracker (or add_bug) first")
	ErrBugNotFound       = errors.New("no such bug in this project")
	ErrAlreadyClosed     = errors.New("bug is already closed; reopen it with update_bug (status open) first")
	ErrBadRelation       = errors.New("invalid related_bugs")
	ErrNothingToUpdate   = errors.New("nothing to update: give status, priority, tags, related_bugs or note")
	ErrBadArgument       = errors.New("invalid argument")
	ErrBadCursor         = errors.New("cursor is not valid for this query; start again without a cursor")
	ErrSchemaTooNew      = errors.New("the bug database was written by a newer version of mcp-secure")
	ErrDatabaseUnusable  = errors.New("the bug database cannot be used")
	errUnknownMigrations = errors.New("migrations are not contiguous")
)

// callerErrors are the errors whose message is shown to the model as is.
var callerErrors = []error{
	ErrNoProject, ErrBadProject, ErrNotInitialised, ErrBugNotFound, ErrAlreadyClosed,
	ErrBadRelation, ErrNothingToUpdate, ErrBadArgument, ErrBadCursor, ErrSchemaTooNew,
	ErrDatabaseUnusable,
}

func isCallerError(err error) bool {
	for _, e := range callerErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// storageMessage explains a failure of the database itself (locked,
// read-only, corrupt, full, unreadable) in words the model can act on.
// ok is false for errors that are not SQLite's.
func storageMessage(db string, err error) (msg string, ok bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return "", false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Sprintf("the bug database %s is locked by another writer; nothing was changed, try again shortly", db), true
	case sqlite3.SQLITE_READONLY:
		return fmt.Sprintf("the bug database %s is read-only; nothing was changed", db), true
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return fmt.Sprintf("the bug database %s is corrupt or not a SQLite database; it was left untouched (restore it from a backup, or point plugins.bugtracker.database elsewhere)", db), true
	case sqlite3.SQLITE_FULL:
		return fmt.Sprintf("the disk holding the bug database %s is full; nothing was changed", db), true
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
		return fmt.Sprintf("the bug database %s cannot be opened: %s", db, se.Error()), true
	case sqlite3.SQLITE_IOERR:
		return fmt.Sprintf("I/O error on the bug database %s; nothing was changed: %s", db, se.Error()), true
	case sqlite3.SQLITE_INTERRUPT:
		return fmt.Sprintf("the bug database %s did not answer before the call's deadline; nothing was changed", db), true
	}
	return fmt.Sprintf("bug database error on %s: %s", db, se.Error()), true
}

// isContextError reports a cancelled or expired call, which the server
// reports itself.
func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
