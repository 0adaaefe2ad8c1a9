package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcp-secure/mcp-secure/plugins/bugtracker"
	"github.com/mcp-secure/mcp-secure/server"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/pins"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// ownFile is one of the server's own files or directories, as the
// built-in filesystem rule reads it (data.mcp.policy.server_files): a
// tool may never touch it, whatever filesystem.allowed_paths says.
type ownFile struct {
	path  string
	what  string
	below bool // everything below the directory too
	// prefix: every name that starts with path (rotated logs, SQLite's
	// -wal and -shm files beside a database).
	prefix bool
	// owner: the upstream server whose code it is, which may still read
	// it.
	owner string
}

// serverFiles lists the server's own files: the audit log (its whole
// directory when the directory holds no allowed path), the policy file,
// the Rego modules, the plugins' data directories and the bug database.
// Each is listed as written and, when symlinks make it differ, as the
// real path, so the filesystem guard's re-decision of the real path of
// what it opened meets the rule too.
//
// The warning, when not empty, says the audit log's directory could not
// be protected whole.
func serverFiles(pol *policy.Policy) (data []any, warning string) {
	files, warning := ownFiles(pol)
	out := make([]any, 0, 2*len(files))
	for _, f := range files {
		out = append(out, f.data(f.path))
		if real := guard.RealPath(f.path); real != f.path {
			out = append(out, f.data(real))
		}
	}
	return out, warning
}

// protectedPaths are the server's own files as the command door's
// sandbox keeps them out of children's reach.
func protectedPaths(pol *policy.Policy) []guard.ProtectedPath {
	files, _ := ownFiles(pol)
	var out []guard.ProtectedPath
	for _, f := range files {
		// The command door resolves their real paths itself.
		out = append(out, guard.ProtectedPath{Path: f.path, Prefix: f.prefix, What: f.what, Owner: f.owner})
	}
	return out
}

// ownFiles lists the server's own files and says when the audit log's
// directory, or an upstream server's code, could not be protected whole.
func ownFiles(pol *policy.Policy) (files []ownFile, warning string) {
	var warnings []string
	defer func() { warning = strings.Join(warnings, "; ") }()
	auditDir := filepath.Dir(pol.Audit.LogFile)
	if holdsAllowed(auditDir, pol.Roots()) {
		warnings = append(warnings, fmt.Sprintf("the audit log's directory %s holds paths tools may use: only the log's own files are protected from tools (give the audit log a directory of its own)", auditDir))
		files = append(files, ownFile{path: pol.Audit.LogFile, what: "audit log", prefix: true})
		files = append(files, ownFile{path: auditDir, what: "audit log directory"})
		// The fingerprint key and the temporary names it is created under:
		// whoever holds the key can test guesses at redacted secrets.
		key := audit.KeyPath(pol.Audit.LogFile)
		files = append(files, ownFile{path: key, what: "audit fingerprint key", prefix: true})
		files = append(files, ownFile{path: filepath.Join(auditDir, ".audit.key"), what: "audit fingerprint key", prefix: true})
		// The tool pins: whoever writes them approves changed tools.
		files = append(files, ownFile{path: pins.PathFor(pol.Audit.LogFile), what: "tool pins", prefix: true})
		files = append(files, ownFile{path: filepath.Join(auditDir, "."+pins.FileName), what: "tool pins", prefix: true})
	} else {
		files = append(files, ownFile{path: auditDir, what: "audit log directory", below: true})
	}
	if src := pol.Source(); src != policy.EmbeddedName {
		if abs, err := filepath.Abs(src); err == nil {
			files = append(files, ownFile{path: abs, what: "policy file"})
		}
	}
	if exe, err := os.Executable(); err == nil {
		// Whoever replaces the server's binary, or puts a launcher beside
		// it, runs unconfined at the next start.
		files = append(files, ownFile{path: exe, what: "server executable"})
		files = append(files, ownFile{path: filepath.Join(filepath.Dir(exe), sandbox.LauncherName), what: "sandbox launcher"})
	}
	if dir := pol.StateDir(); dir != "" {
		// Whoever writes the kept bundle or its rollback floor chooses
		// the policy of the next start, or rolls the fleet back.
		files = append(files, ownFile{path: dir, what: "bundle state directory", below: true})
	}
	for _, m := range pol.Rego.Modules {
		files = append(files, ownFile{path: m, what: "Rego module"})
	}
	if dir, err := server.DefaultDataDir(); err == nil {
		files = append(files, ownFile{path: dir, what: "plugin data directory", below: true})
	}
	for _, dir := range pol.External.Dirs {
		// A tool that could change a plugin's executable or manifest would
		// choose what runs next, unconfined by commands.allowed.
		files = append(files, ownFile{path: dir, what: "external plugin directory", below: true})
	}
	for _, name := range pol.ServerNames() {
		// An upstream server's code below an allowed path: a tool that
		// could change it would choose what runs, with the server's
		// variables (its secrets), at the server's next start. Its
		// sandbox.read and a command given by path are kept from every
		// child but the server itself, which may read them.
		s := pol.Servers[name]
		what := "code of upstream server " + name
		for _, r := range s.Sandbox.Read {
			switch {
			case holdsAllowed(r, pol.Roots()):
				warnings = append(warnings, fmt.Sprintf("servers.%s.sandbox.read path %s holds paths tools may use: it cannot be kept from tools (give the server's code a directory of its own)", name, r))
			case insideAllowed(r, pol.Roots()):
				files = append(files, ownFile{path: r, what: what, below: true, owner: name})
			}
		}
		if filepath.IsAbs(s.Command) && insideAllowed(s.Command, pol.Roots()) {
			files = append(files, ownFile{path: filepath.Clean(s.Command), what: what, owner: name})
		}
	}
	db := pol.Plugins[bugtracker.Name][bugtracker.DatabaseSetting]
	if db == "" {
		db = os.Getenv(bugtracker.DatabaseEnv)
	}
	if filepath.IsAbs(db) {
		files = append(files, ownFile{path: filepath.Clean(db), what: "bug database", prefix: true})
	}

	return files, warning
}

func (f ownFile) data(path string) map[string]any {
	return map[string]any{"path": path, "what": f.what, "below": f.below, "prefix": f.prefix}
}

// insideAllowed reports whether path lies below one of the allowed roots
// (real paths compared too: a root or a path written through a symlink).
func insideAllowed(path string, roots []string) bool {
	for _, p := range []string{path, guard.RealPath(path)} {
		for _, r := range roots {
			for _, q := range []string{r, guard.RealPath(r)} {
				if q == "/" || strings.HasPrefix(p, q+"/") {
					return true
				}
			}
		}
	}
	return false
}

// holdsAllowed reports whether dir is, or is above, one of the allowed
// roots: protecting everything below it would deny what the policy allows.
func holdsAllowed(dir string, roots []string) bool {
	for _, r := range roots {
		if r == dir || dir == "/" || strings.HasPrefix(r, dir+"/") {
			return true
		}
	}
	return false
}
