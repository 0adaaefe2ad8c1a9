package bugtracker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// storeOptions tune how the database is opened.
type storeOptions struct {
	// busyTimeout is how long a statement waits for another writer's lock
	// before failing with SQLITE_BUSY.
	busyTimeout time.Duration
	// synchronous is the PRAGMA synchronous level of every connection:
	// NORMAL or FULL.
	synchronous string
	// readers is the size of the read-only connection pool.
	readers int
	// pragmas are appended to every connection's PRAGMAs (tests: a small
	// max_page_count stands in for a full disk).
	pragmas []string
}

func defaultStoreOptions() storeOptions {
	return storeOptions{busyTimeout: 5 * time.Second, synchronous: "NORMAL", readers: 4}
}

// store is the open database: one writer connection, so writes queue in
// the process instead of spinning on SQLite's lock, and a pool of
// query-only readers, which WAL lets run alongside the writer.
type store struct {
	path    string
	w       *sql.DB
	r       *sql.DB
	version int // schema version after migration

	// Prepared statements, per pool: parsing SQL costs more than running
	// most of these statements.
	wstmts, rstmts stmtCache
}

// openStore opens (creating if needed) the database at path and brings
// its schema up to date. The file is created 0600 in a 0700 directory.
func openStore(ctx context.Context, path string, opts storeOptions) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabaseUnusable, err)
	}
	// SQLite would create the file with the process umask; create it first
	// so the database (and its -wal and -shm files, which copy its mode)
	// are private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		f.Close()
	case errors.Is(err, fs.ErrExist):
	default:
		// A read-only directory with an existing file is still opened
		// below; anything else is reported.
		if _, serr := os.Stat(path); serr != nil {
			return nil, fmt.Errorf("%w: %w", ErrDatabaseUnusable, err)
		}
	}

	w, err := sql.Open("sqlite", dsn(path, opts, false))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	readers := max(opts.readers, 1)
	r, err := sql.Open("sqlite", dsn(path, opts, true))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)

	s := &store{path: path, w: w, r: r, wstmts: stmtCache{db: w}, rstmts: stmtCache{db: r}}
	if s.version, err = migrate(ctx, w, len(migrations)); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// dsn is the driver name of path: a file: URI (so no character of the
// path is taken for a parameter) with the connection's PRAGMAs. Writes
// begin IMMEDIATE so a transaction never has to upgrade a read lock.
func dsn(path string, opts storeOptions, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(opts.busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous("+cmpOr(opts.synchronous, "NORMAL")+")")

	for _, p := range opts.pragmas {
		q.Add("_pragma", p)
	}
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (s *store) close() error {
	return errors.Join(s.wstmts.close(), s.rstmts.close(), s.r.Close(), s.w.Close())
}

// write runs fn in one IMMEDIATE transaction on the writer connection:
// all of it is committed or none of it.
func (s *store) write(ctx context.Context, fn func(tx dbtx) error) error {
	defer s.wstmts.prepareWanted(ctx)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(&txn{tx: tx, stmts: &s.wstmts}); err != nil {
		return err
	}
	return tx.Commit()
}

// read runs fn in one read transaction on a reader, so everything it
// reads comes from one snapshot.
func (s *store) read(ctx context.Context, fn func(tx dbtx) error) error {
	defer s.rstmts.prepareWanted(ctx)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(&txn{tx: tx, stmts: &s.rstmts})
}

// dbtx is what the operations need of a transaction.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txn runs a transaction's statements, from the pool's prepared
// statements when it has them.
type txn struct {
	tx    *sql.Tx
	stmts *stmtCache
}

var _ dbtx = (*txn)(nil)

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmts.lookup(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmts.lookup(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmts.lookup(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// maxStmts bounds the statements a pool keeps prepared; list queries are
// built from their filters, so their number is bounded but not small.
const maxStmts = 256

// stmtCache keeps statements prepared on a pool, by SQL text. A
// statement is prepared on the pool after the transaction that first ran
// it has ended: preparing takes a connection, and the writer pool has
// only the one the transaction holds. A transaction then runs the
// statement on its own connection, where database/sql prepares it once.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt // prepared, or nil if preparing failed
	wanted map[string]bool
}

// lookup returns the prepared statement for query, or nil; a query not
// seen before is noted, to be prepared after the transaction.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, seen := c.m[query]
	if !seen && len(c.m)+len(c.wanted) < maxStmts {
		if c.wanted == nil {
			c.wanted = map[string]bool{}
		}
		c.wanted[query] = true
	}
	return st
}

// prepareWanted prepares the statements noted since the last call. It
// must not be called while the caller holds a connection of the pool.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	queries := slices.Collect(maps.Keys(c.wanted))
	clear(c.wanted)
	c.mu.Unlock()
	// Not under the lock: another goroutine's transaction may need
	// lookup while this waits for a connection.
	prepared := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			st = nil // run unprepared from now on
		}
		prepared[q] = st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	for q, st := range prepared {
		if old, dup := c.m[q]; dup && old != nil {
			if st != nil {
				st.Close()
			}
			continue
		}
		c.m[q] = st
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	c.m = nil
	return errors.Join(errs...)
}
