package guard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Limits on a path.
const (
	MaxPathBytes    = 4096
	maxSegmentBytes = 255
	defaultReadMax  = 16 << 20
)

// ErrBadPath is wrapped by every error about a path's form (NUL bytes,
// length, encoding, relative without a base).
var ErrBadPath = errors.New("invalid path")

// Files decides and performs every filesystem access of the plugins.
type Files struct {
	decide Decider
	audit  Auditor
	log    *slog.Logger
	roots  []string // absolute directories, longest first
	dry    DryRunner

	// afterDecide, when set (tests), runs between a decision and the open.
	afterDecide func(path string)
}

var _ plugin.Files = (*Files)(nil)

// FilesOptions configure a Files guard.
type FilesOptions struct {
	// Roots are the directories operations are confined to: the static
	// prefixes of the policy's allowed path globs (policy.Policy.Roots).
	Roots  []string
	Logger *slog.Logger
	// DryRun, when set, also decides each access under the dry-run
	// policy, for the record only.
	DryRun DryRunner
}

// NewFiles returns the filesystem guard.
func NewFiles(d Decider, a Auditor, opts *FilesOptions) *Files {
	f := &Files{decide: d, audit: a, log: slog.New(slog.DiscardHandler)}
	if opts != nil {
		for _, r := range opts.Roots {
			if filepath.IsAbs(r) {
				f.roots = append(f.roots, filepath.Clean(r))
			}
		}
		if opts.Logger != nil {
			f.log = opts.Logger
		}
		f.dry = opts.DryRun
	}
	slices.SortFunc(f.roots, func(a, b string) int { return len(b) - len(a) })
	f.roots = slices.Compact(f.roots)
	return f
}

// Roots returns the confinement roots, longest first.
func (f *Files) Roots() []string { return slices.Clone(f.roots) }

// CheckPath validates the form of an absolute path and returns it
// cleaned.
func CheckPath(p string) (string, error) {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("%w: path contains a NUL byte", ErrBadPath)
	case len(p) > MaxPathBytes:
		return "", fmt.Errorf("%w: path is longer than %d bytes", ErrBadPath, MaxPathBytes)
	case !utf8.ValidString(p):
		return "", fmt.Errorf("%w: path is not valid UTF-8", ErrBadPath)
	case !filepath.IsAbs(p):
		return "", fmt.Errorf("%w: %q is not absolute", ErrBadPath, p)
	}
	clean := filepath.Clean(p)
	for seg := range strings.SplitSeq(clean, "/") {
		if len(seg) > maxSegmentBytes {
			return "", fmt.Errorf("%w: a path segment is longer than %d bytes", ErrBadPath, maxSegmentBytes)
		}
	}
	return clean, nil
}

// Abs makes p absolute against base, never against the working directory.
func (f *Files) Abs(base, p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 || strings.IndexByte(base, 0) >= 0 {
		return "", fmt.Errorf("%w: path contains a NUL byte", ErrBadPath)
	}
	if !filepath.IsAbs(p) {
		if !filepath.IsAbs(base) {
			return "", fmt.Errorf("%w: relative path %q needs an absolute base directory", ErrBadPath, p)
		}
		p = filepath.Join(base, p)
	}
	return CheckPath(p)
}

// Check decides op on path for the tool in ctx and audits the decision;
// it opens nothing. A denial is a *DeniedError.
func (f *Files) Check(ctx context.Context, path string, op plugin.Op) error {
	clean, err := CheckPath(path)
	if err != nil {
		f.record(ctx, path, op, audit.ResultDeny, engine.Decision{Reasons: []string{err.Error()}}, 0, nil)
		return &DeniedError{Kind: audit.KindFilesystem, Target: fmt.Sprintf("%s of %q", op, path), Reasons: []string{err.Error()}}
	}
	return f.check(ctx, clean, op)
}

func (f *Files) check(ctx context.Context, path string, op plugin.Op) error {
	start := time.Now()
	input := filesInput(ctx, path, op)
	d, err := f.decide.Decide(ctx, engine.Filesystem, input)
	result := audit.ResultAllow
	switch {
	case err != nil:
		result = audit.ResultError
		f.log.Error("filesystem decision failed; denying", "path", path, "err", err)
	case !d.Allow:
		result = audit.ResultDeny
	}
	if werr := f.record(ctx, path, op, result, d, time.Since(start), dryRun(ctx, f.dry, engine.Filesystem, input)); werr != nil {
		return &DeniedError{Kind: audit.KindFilesystem, Target: fmt.Sprintf("%s of %q", op, path), Reasons: []string{"the audit record could not be written"}}
	}
	if result != audit.ResultAllow {
		return &DeniedError{Kind: audit.KindFilesystem, Target: fmt.Sprintf("%s of %q", op, path), Reasons: d.Reasons}
	}
	return nil
}

func (f *Files) record(ctx context.Context, path string, op plugin.Op, result string, d engine.Decision, took time.Duration, dry *audit.DryRun) error {
	call := CallFrom(ctx)
	return f.audit.Log(ctx, audit.Record{
		DecisionID:       audit.NewID(),
		ParentDecisionID: call.DecisionID,
		SessionID:        call.SessionID,
		RequestID:        call.RequestID,
		Path:             engine.Filesystem.Path(),
		Kind:             audit.KindFilesystem,
		Tool:             call.Tool,
		Result:           result,
		Reasons:          d.Reasons,
		Input:            map[string]any{"path": path, "operation": string(op)},
		DurationNS:       took.Nanoseconds(),
		DryRun:           dry,
		Revision:         cmp.Or(d.Revision, revisionOf(ctx, f.decide)),
	})
}

func filesInput(ctx context.Context, path string, op plugin.Op) ast.Value {
	call := CallFrom(ctx)
	return engine.FileInput{Path: path, Operation: string(op), Tool: call.Tool, RequestID: call.RequestID}.Value()
}

// anchored is a decided path opened relative to the os.Root of the
// allowed directory that contains it.
type anchored struct {
	root *os.Root
	rel  string // "." for the root itself
	path string
}

func (a *anchored) Close() { a.root.Close() }

// anchor decides op on path and opens the os.Root it is confined to: the
// longest configured root containing it (its parent when the path is the
// root itself, so the root's own entry can be opened).
func (f *Files) anchor(ctx context.Context, path string, op plugin.Op) (*anchored, error) {
	clean, err := CheckPath(path)
	if err != nil {
		return nil, f.Check(ctx, path, op)
	}
	if err := f.check(ctx, clean, op); err != nil {
		return nil, err
	}
	if f.afterDecide != nil {
		f.afterDecide(clean)
	}
	var base string
	for _, r := range f.roots {
		if clean == r || r == "/" || strings.HasPrefix(clean, r+"/") {
			base = r
			break
		}
	}
	if base == "" {
		return nil, &DeniedError{Kind: audit.KindFilesystem, Target: fmt.Sprintf("%s of %q", op, clean), Reasons: []string{"no allowed directory contains the path"}}
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(clean, base), "/")
	if clean == base && base != "/" {
		base, rel = filepath.Dir(base), filepath.Base(base)
	}
	if rel == "" {
		rel = "."
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", clean, err)
	}
	return &anchored{root: root, rel: rel, path: clean}, nil
}

// confirm re-decides the real path of an opened file when it differs from
// the decided one: an in-root symlink to a denied name, or a swap after
// the decision, is caught here.
func (f *Files) confirm(ctx context.Context, file *os.File, decided string, op plugin.Op) (string, error) {
	real, err := fdPath(file)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", decided, err)
	}
	if real == decided {
		return real, nil
	}
	if err := f.check(ctx, real, op); err != nil {
		return "", err
	}
	return real, nil
}

// openChecked opens a decided path read-only through its root and
// confirms its real path.
func (f *Files) openChecked(ctx context.Context, path string, op plugin.Op) (*os.File, string, error) {
	a, err := f.anchor(ctx, path, op)
	if err != nil {
		return nil, "", err
	}
	defer a.Close()
	// Non-blocking, so a FIFO or a device cannot stall the call; only
	// regular files and directories are served.
	file, err := a.root.OpenFile(a.rel, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, "", f.openError(ctx, a.path, op, err)
	}
	if st, err := file.Stat(); err != nil || !(st.Mode().IsRegular() || st.IsDir()) {
		file.Close()
		return nil, "", fmt.Errorf("%s %s: not a regular file or directory", op, a.path)
	}
	real, err := f.confirm(ctx, file, a.path, op)
	if err != nil {
		file.Close()
		return nil, "", err
	}
	return file, real, nil
}

// parentDir opens the directory that will hold a's last element, confirms
// its real path, and re-decides the real path of the element when it
// differs from the decided one. The caller works relative to the returned
// descriptor (the *at system calls), so nothing is looked up by path again.
func (f *Files) parentDir(ctx context.Context, a *anchored, op plugin.Op) (*os.File, string, error) {
	dirRel, name := filepath.Dir(a.rel), filepath.Base(a.rel)
	dir, err := a.root.OpenFile(dirRel, os.O_RDONLY|openDirectory, 0)
	if err != nil {
		return nil, "", f.openError(ctx, a.path, op, err)
	}
	realDir, err := f.confirm(ctx, dir, filepath.Dir(a.path), op)
	if err != nil {
		dir.Close()
		return nil, "", err
	}
	if real := filepath.Join(realDir, name); real != a.path {
		if err := f.check(ctx, real, op); err != nil {
			dir.Close()
			return nil, "", err
		}
	}
	return dir, name, nil
}

// Canonical decides op on path and returns its real path, decided again
// when symlinks made it differ.
func (f *Files) Canonical(ctx context.Context, path string, op plugin.Op) (string, error) {
	file, real, err := f.openChecked(ctx, path, op)
	if err != nil {
		return "", err
	}
	file.Close()
	return real, nil
}

// Stat describes path.
func (f *Files) Stat(ctx context.Context, path string) (fs.FileInfo, error) {
	file, _, err := f.openChecked(ctx, path, plugin.OpStat)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return file.Stat()
}

// ReadFile reads a regular file of at most limit bytes.
func (f *Files) ReadFile(ctx context.Context, path string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = defaultReadMax
	}
	file, _, err := f.openChecked(ctx, path, plugin.OpRead)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// ReadDir lists a directory.
func (f *Files) ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error) {
	file, _, err := f.openChecked(ctx, path, plugin.OpList)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	entries, err := file.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// WriteFile writes data to path: a new file is created exclusively (0600),
// an existing regular file is replaced by writing a temporary file beside
// it and renaming it over, so a reader never sees half a file. Everything
// after the decision happens relative to the confirmed parent directory,
// never following a symlink in the last element.
func (f *Files) WriteFile(ctx context.Context, path string, data []byte) error {
	a, err := f.anchor(ctx, path, plugin.OpWrite)
	if err != nil {
		return err
	}
	defer a.Close()
	dir, name, err := f.parentDir(ctx, a, plugin.OpWrite)
	if err != nil {
		return err
	}
	defer dir.Close()
	return writeIn(dir, name, data, a.path)
}

func writeClose(out *os.File, data []byte, path string) error {
	_, err := out.Write(data)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// MkdirAll creates a directory and its parents (0700). The deepest
// existing ancestor is opened and its real path confirmed; the missing
// directories are then made one by one relative to it, each opened without
// following symlinks.
func (f *Files) MkdirAll(ctx context.Context, path string) error {
	a, err := f.anchor(ctx, path, plugin.OpCreate)
	if err != nil {
		return err
	}
	defer a.Close()
	parts := strings.Split(a.rel, "/")
	var dir *os.File
	i := len(parts)
	for ; i >= 0; i-- {
		rel := strings.Join(parts[:i], "/")
		if rel == "" {
			rel = "."
		}
		d, err := a.root.OpenFile(rel, os.O_RDONLY|openDirectory, 0)
		if err == nil {
			dir = d
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return f.openError(ctx, a.path, plugin.OpCreate, err)
		}
	}
	if dir == nil {
		return fmt.Errorf("create %s: no existing directory to start from", a.path)
	}
	decidedAncestor := filepath.Join(append([]string{a.root.Name()}, parts[:i]...)...)
	realAncestor, err := f.confirm(ctx, dir, decidedAncestor, plugin.OpCreate)
	if err != nil {
		dir.Close()
		return err
	}
	if real := filepath.Join(append([]string{realAncestor}, parts[i:]...)...); real != a.path {
		if err := f.check(ctx, real, plugin.OpCreate); err != nil {
			dir.Close()
			return err
		}
	}
	for _, part := range parts[i:] {
		next, err := mkdirIn(dir, part)
		dir.Close()
		if err != nil {
			return fmt.Errorf("create %s: %w", a.path, err)
		}
		dir = next
	}
	dir.Close()
	return nil
}

// Remove removes a file, a symlink itself, or an empty directory, relative
// to its confirmed parent directory.
func (f *Files) Remove(ctx context.Context, path string) error {
	a, err := f.anchor(ctx, path, plugin.OpDelete)
	if err != nil {
		return err
	}
	defer a.Close()
	if a.rel == "." {
		return fmt.Errorf("delete %s: refusing to remove an allowed root", a.path)
	}
	if slices.Contains(f.roots, a.path) {
		return fmt.Errorf("delete %s: refusing to remove an allowed root", a.path)
	}
	dir, name, err := f.parentDir(ctx, a, plugin.OpDelete)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := removeIn(dir, name); err != nil {
		return fmt.Errorf("delete %s: %w", a.path, err)
	}
	return nil
}

// errEscapes is how os.Root reports a path that a symlink or ".." leads
// out of its root; the error value itself is not exported.
const errEscapes = "path escapes from parent"

// openError turns a failed open under an allowed root into the caller's
// error. A path that leads out of its root (a symlink planted by a tool,
// a "..") is a refusal of the policy's own, audited as one; anything else
// is an ordinary failure naming the full path.
func (f *Files) openError(ctx context.Context, path string, op plugin.Op, err error) error {
	inner := unwrapPathError(err)
	if !strings.Contains(inner.Error(), errEscapes) {
		return fmt.Errorf("%s %s: %w", op, path, inner)
	}
	reasons := []string{fmt.Sprintf("path %q leads out of its allowed directory (through a symlink or \"..\")", path)}
	if werr := f.record(ctx, path, op, audit.ResultDeny, engine.Decision{Reasons: reasons}, 0, nil); werr != nil {
		reasons = []string{"the audit record could not be written"}
	}
	return &DeniedError{Kind: audit.KindFilesystem, Target: fmt.Sprintf("%s of %q", op, path), Reasons: reasons}
}

// unwrapPathError drops the *PathError wrapper, whose path is relative to
// the root and would confuse the reader; the caller names the full path.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
