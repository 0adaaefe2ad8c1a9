package plugin

import (
	"context"
	"io/fs"
)

// Op is what a tool does to a path, as the filesystem policy sees it.
type Op string

// The filesystem operations.
const (
	OpRead   Op = "read"
	OpWrite  Op = "write"
	OpList   Op = "list"
	OpCreate Op = "create"
	OpDelete Op = "delete"
	OpStat   Op = "stat"
)

// Files is the only way to the filesystem on a tool's behalf. Every method
// takes an absolute path (see Abs), decides it with the filesystem policy
// (data.mcp.filesystem) for the tool in the context, audits the decision,
// and opens the path through an os.Root anchored at the allowed directory it
// matched, so neither ".." nor a symlink can leave what was decided. A
// denial is an error that wraps the guard's denial.
type Files interface {
	// Abs makes p absolute: an absolute p is cleaned, a relative one is
	// joined to base, which must itself be absolute. It never uses the
	// process's working directory, and it decides nothing.
	Abs(base, p string) (string, error)
	// Check decides op on path, and audits the decision, without touching
	// the filesystem: for a path the tool only names (a project it lists
	// records of), not one it opens.
	Check(ctx context.Context, path string, op Op) error
	// Canonical decides op on path, then returns its cleaned form with
	// symlinks resolved, decided again if it differs.
	Canonical(ctx context.Context, path string, op Op) (string, error)
	// Stat describes path (operation stat).
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
	// ReadFile reads at most limit bytes of path (operation read); a
	// longer file is an error. limit <= 0 means 16 MiB.
	ReadFile(ctx context.Context, path string, limit int64) ([]byte, error)
	// WriteFile writes data to path (operation write): a new file is
	// created exclusively, an existing one replaced by an atomic rename.
	WriteFile(ctx context.Context, path string, data []byte) error
	// ReadDir lists a directory (operation list).
	ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error)
	// MkdirAll creates a directory and its parents (operation create).
	MkdirAll(ctx context.Context, path string) error
	// Remove removes a file or an empty directory (operation delete).
	Remove(ctx context.Context, path string) error
}

// Commands runs processes on a tool's behalf: argv only, never a shell.
// The executable is resolved to an absolute path and decided with its
// arguments by the command policy (data.mcp.commands); the environment is
// scrubbed to an allowlist, the working directory must be allowed by the
// filesystem policy, output is capped and the whole process group is killed
// at the context's deadline.
type Commands interface {
	Exec(ctx context.Context, argv []string, opts ExecOptions) (*ExecResult, error)
}

// ExecOptions tune one Exec.
type ExecOptions struct {
	// Dir is the absolute working directory; empty means the broadest
	// allowed directory of the filesystem policy.
	Dir string
	// Env adds variables to the scrubbed environment. A name on the
	// refused list ([EnvRefusal]: PATH, HOME, LD_*, GIT_*, PYTHON*, the
	// server's own OTEL_* and MCP_SECURE_*, ...) is an error.
	Env map[string]string
	// Stdin is written to the process's standard input.
	Stdin []byte
	// MaxOutput caps stdout and stderr each; 0 means 1 MiB.
	MaxOutput int
}

// ExecResult is a finished process.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
	// Truncated reports output beyond MaxOutput was dropped.
	Truncated bool
}
