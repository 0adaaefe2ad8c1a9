package bugtracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Name and Version of the plugin.
const (
	Name    = "bugtracker"
	Version = "1.0.0"
)

// Where the database lives: the policy's plugins.bugtracker.database,
// else DatabaseEnv, else DatabaseFile in the server's data directory for
// the plugin.
const (
	DatabaseSetting = "database"
	DatabaseEnv     = "MCP_SECURE_BUGTRACKER_DB"
	DatabaseFile    = "bugs.db"
)

// SynchronousSetting (plugins.bugtracker.synchronous) chooses how hard a
// commit is pushed to disk: "normal" (the default) survives a crash of
// the server but may lose the last commits on a power failure; "full"
// also survives a power failure, at the cost of an fsync per write.
const SynchronousSetting = "synchronous"

func init() {
	plugin.Register(Name, func(h plugin.Host) (plugin.Plugin, error) {
		return newTracker(h, defaultStoreOptions())
	})
}

// tracker is the plugin. The database is opened on the first call that
// needs it; if opening fails, the call gets an error result and the next
// call tries again.
type tracker struct {
	host       plugin.Host
	log        *slog.Logger
	projectEnv string
	dbPath     string // configured path; "" means the data directory's
	opts       storeOptions
	now        func() time.Time

	mu sync.Mutex
	st *store
	// resolved is the database path once known, for error messages.
	resolved atomic.Pointer[string]
}

var _ plugin.Plugin = (*tracker)(nil)

func newTracker(h plugin.Host, opts storeOptions) (*tracker, error) {
	if h == nil {
		return nil, errors.New("bugtracker needs a host")
	}
	t := &tracker{host: h, log: h.Logger(), projectEnv: os.Getenv(ProjectEnv), opts: opts, now: time.Now}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	source := "plugins.bugtracker." + DatabaseSetting
	t.dbPath = h.Setting(Name, DatabaseSetting)
	if t.dbPath == "" {
		source, t.dbPath = DatabaseEnv, os.Getenv(DatabaseEnv)
	}
	if t.dbPath != "" && !filepath.IsAbs(t.dbPath) {
		return nil, fmt.Errorf("%s: database path %q must be absolute", source, t.dbPath)
	}
	if t.dbPath != "" {
		t.dbPath = filepath.Clean(t.dbPath)
	}
	switch v := strings.ToLower(h.Setting(Name, SynchronousSetting)); v {
	case "":
	case "normal", "full":
		t.opts.synchronous = strings.ToUpper(v)
	default:
		return nil, fmt.Errorf("plugins.bugtracker.%s: %q is not normal or full", SynchronousSetting, v)
	}
	return t, nil
}

func (t *tracker) Info() plugin.Info {
	return plugin.Info{Name: Name, Version: Version, Description: "A local bug tracker shared by all your projects (SQLite)"}
}

// databasePath is where the database is, or will be.
func (t *tracker) databasePath() (string, error) {
	if t.dbPath != "" {
		return t.dbPath, nil
	}
	dir, err := t.host.DataDir(Name)
	if err != nil {
		return "", fmt.Errorf("%w: no data directory: %w", ErrDatabaseUnusable, err)
	}
	return filepath.Join(dir, DatabaseFile), nil
}

// store returns the open database, opening and migrating it first if
// needed.
func (t *tracker) store(ctx context.Context) (*store, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.st != nil {
		return t.st, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := t.databasePath()
	if err != nil {
		return nil, err
	}
	t.resolved.Store(&path)
	st, err := openStore(ctx, path, t.opts)
	if err != nil {
		return nil, err
	}
	t.st = st
	return st, nil
}

var _ plugin.Closer = (*tracker)(nil)

// Close closes the database at shutdown.
func (t *tracker) Close() error { return t.close() }

// close closes the database; the next call opens it again.
func (t *tracker) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.st == nil {
		return nil
	}
	err := t.st.close()
	t.st = nil
	return err
}

// timestamp is the time of a change, in UTC with microseconds.
func (t *tracker) timestamp() string {
	return t.now().UTC().Format("2006-01-02T15:04:05.000000Z")
}

// fail turns an error into what the handler returns: a caller's mistake
// or a database failure is an error result the model can act on; a
// policy denial, a cancelled call or anything unexpected goes back to the
// server, which reports it.
func (t *tracker) fail(tool string, err error) (*plugin.Result, error) {
	if isContextError(err) {
		return nil, err
	}
	if isCallerError(err) {
		return plugin.Errorf("%s: %v", tool, err), nil
	}
	db := "(not yet located)"
	if p := t.resolved.Load(); p != nil {
		db = *p
	}
	if msg, ok := storageMessage(db, err); ok {
		t.log.Warn("bug database failure", "tool", tool, "database", db, "err", err)
		return plugin.Errorf("%s: %s", tool, msg), nil
	}
	return nil, fmt.Errorf("%s: %w", tool, err)
}

// safe keeps a handler's panic from reaching the server: it is logged
// and reported as an error result. Transactions roll back as the panic
// unwinds.
func (t *tracker) safe(tool string, h plugin.Handler) plugin.Handler {
	return func(ctx context.Context, call *plugin.Call) (res *plugin.Result, err error) {
		defer func() {
			if r := recover(); r != nil {
				t.log.Error("bugtracker handler panicked", "tool", tool, "panic", r)
				res, err = plugin.Errorf("%s failed with an internal error; nothing was changed", tool), nil
			}
		}()
		return h(ctx, call)
	}
}
