package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	// owners: the upstream servers whose code it is, which may still read
	// it.
	owners []string
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
		out = append(out, guard.ProtectedPath{Path: f.path, Prefix: f.prefix, What: f.what, Owners: f.owners})
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
	code, _, codeWarnings := serverCode(pol)
	files = append(files, code...)
	warnings = append(warnings, codeWarnings...)
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

// maxCodeEntries bounds the entries of an upstream server's code
// directories looked through for symlinks, and maxCodeLinks the places
// elsewhere below the allowed paths they may lead to, per server.
const (
	maxCodeEntries = 20000
	maxCodeLinks   = 256
)

// serverCode lists the code of the upstream servers that lies below an
// allowed path, as own files of the server (see ownFiles) that each
// server whose code it is may still read: a tool that could change it
// would choose what runs, with the server's variables (its secrets), at
// the server's next start. A server's code is its sandbox.read paths,
// every file of the program its command runs (the file and its #!
// interpreters), and what symlinks in its sandbox.read directories lead
// to; reads are, per server, the paths it must be given to read beyond
// its sandbox.read (the targets of those symlinks). Code that cannot be
// kept from tools, and arguments that name files below an allowed path
// outside the server's code, are warned of.
func serverCode(pol *policy.Policy) (files []ownFile, reads map[string][]string, warnings []string) {
	roots := pol.Roots()
	reads = map[string][]string{}
	at := map[string]int{} // path -> index in files
	add := func(name, path string, below bool) {
		path = filepath.Clean(path)
		if i, ok := at[path]; ok {
			if !slices.Contains(files[i].owners, name) {
				files[i].owners = append(files[i].owners, name)
			}
			files[i].below = files[i].below || below
			return
		}
		at[path] = len(files)
		files = append(files, ownFile{path: path, what: "upstream server code", below: below, owners: []string{name}})
	}
	for _, name := range pol.ServerNames() {
		s := pol.Servers[name]
		var mine []string // this server's code, real paths
		for _, r := range s.Sandbox.Read {
			switch {
			case holdsAllowed(r, roots):
				warnings = append(warnings, fmt.Sprintf("servers.%s.sandbox.read path %s holds paths tools may use: it cannot be kept from tools (give the server's code a directory of its own)", name, r))
			case insideAllowed(r, roots):
				add(name, r, true)
				mine = append(mine, guard.RealPath(r))
			}
		}
		if chain, err := guard.ProgramChain(s.Command); err == nil {
			for _, f := range chain {
				if insideAllowed(f, roots) {
					add(name, f, false)
					mine = append(mine, guard.RealPath(f))
				}
			}
		}
		// Symlinks below the code lead to code too: Landlock and the
		// filesystem door follow them.
		seen, warned := 0, map[string]bool{}
		for _, r := range s.Sandbox.Read {
			if holdsAllowed(r, roots) || !insideAllowed(r, roots) {
				continue
			}
			filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				if seen++; seen > maxCodeEntries {
					return filepath.SkipAll
				}
				if d.Type()&fs.ModeSymlink == 0 {
					return nil
				}
				target := guard.RealPath(path)
				switch {
				case withinAny(target, mine) || warned[target]:
				case holdsAllowed(target, roots):
					warnings = append(warnings, fmt.Sprintf("servers.%s's code links (%s) to %s, which holds paths tools may use: it cannot be kept from tools", name, path, target))
					warned[target] = true
				case !insideAllowed(target, roots):
				case len(reads[name]) == maxCodeLinks:
					warnings = append(warnings, fmt.Sprintf("servers.%s's code links to more than %d places below allowed paths: those past them (%s, ...) are not kept from tools", name, maxCodeLinks, target))
					return filepath.SkipAll
				default:
					add(name, target, true)
					mine = append(mine, target)
					reads[name] = append(reads[name], target)
				}
				return nil
			})
		}
		if seen > maxCodeEntries {
			warnings = append(warnings, fmt.Sprintf("servers.%s.sandbox.read holds more than %d entries below allowed paths: symlinks past them were not followed, and code they lead to is not kept from tools", name, maxCodeEntries))
		}
		for _, a := range s.Args {
			if !filepath.IsAbs(a) || !insideAllowed(a, roots) || withinAny(guard.RealPath(a), mine) {
				continue
			}
			if _, err := os.Stat(a); err == nil {
				warnings = append(warnings, fmt.Sprintf("servers.%s.args names %s, below an allowed path: tools may change it; if it is the server's code, list it (or its directory) in servers.%s.sandbox.read to keep it from them", name, a, name))
			}
		}
	}
	return files, reads, warnings
}

// withinAny reports whether path is, or lies below, one of dirs.
func withinAny(path string, dirs []string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
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
