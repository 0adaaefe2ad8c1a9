package guard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/internal/filememo"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// An executable is decided by what it is, not what it is called.
//
// Trust: a file a tool could have written or swapped is refused, whatever
// its name. That is a file
//   - inside one of the filesystem roots (the static prefixes of
//     filesystem.allowed_paths), or where the filesystem policy would let
//     a tool write it;
//   - or whose own mode, or the mode of any directory above it (every hop
//     of its symlinks included), lets group or others write;
//   - or which, or any directory above it, is owned by someone other than
//     root or the server's own user (root only when children run
//     unconfined and could write anywhere the server can).
//
// That is the trusted-path rule of sudo's secure_path and OpenSSH's
// StrictModes, plus the policy's own view of where tools write: as root,
// a file a tool wrote is root-owned, so the allowed-paths rule is the one
// that catches it.
//
// A "#!" script is decided together with its interpreter, which must pass
// the same rules and the allowlist and blocklist; "#!/usr/bin/env X"
// resolves X through SafePath and decides it too. Executables compare by
// device and inode as well as by name: a hard link of a blocked program is
// that program.

// maxShebang is the longest "#!" line read, as the kernel reads it.
const maxShebang = 256

// maxInterpreters bounds a chain of scripts naming scripts.
const maxInterpreters = 4

// maxLinks bounds the symlinks followed to an executable.
const maxLinks = 40

// program is one file of what runs: the executable argv names, or an
// interpreter a "#!" line names.
type program struct {
	path, real string // as found; the file behind its symlinks
	dev, ino   uint64
	untrusted  []string // why a tool could have written or swapped it
	sameAs     []string // policy entries that are this very file
	role       string   // "" for the executable; "interpreter"
	trampoline bool     // /usr/bin/env in a "#!" line: decided by what it starts
	regular    bool     // real is a regular file
}

// identity is a file's device and inode.
type identity struct{ dev, ino uint64 }

// trust holds what the rules compare against for one decision.
type trust struct {
	roots      []string
	ownerOK    func(uid uint32) bool
	checked    map[string]string // directory -> problem ("" when fine)
	identities map[identity][]string
}

func (c *Commands) newTrust() *trust {
	euid := uint32(os.Geteuid())
	rootOnly := c.opts.Unconfined
	t := &trust{
		checked: map[string]string{},
		ownerOK: func(uid uint32) bool { return uid == 0 || (!rootOnly && uid == euid) },
	}
	for _, r := range c.files.Roots() {
		if r != "/" {
			t.roots = append(t.roots, r)
		}
	}
	t.identities = c.identities()
	return t
}

// identityTTL is how long the files the commands section names are
// remembered by identity: they change when a package is upgraded, and
// stat-ing each entry in every system directory costs more than the rest
// of a decision.
const identityTTL = time.Second

func (c *Commands) identities() map[identity][]string {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	if c.idMap == nil || time.Since(c.idAt) > identityTTL {
		c.idMap, c.idAt = c.entryIdentities(), time.Now()
	}
	return c.idMap
}

// entryIdentities maps each file the commands section names (allowed
// and blocked) to the entries that name it, as they appear in the
// policy's data.
func (c *Commands) entryIdentities() map[identity][]string {
	out := map[identity][]string{}
	add := func(key, entry string) {
		var paths []string
		if filepath.IsAbs(entry) {
			paths = []string{filepath.Clean(entry)}
		} else {
			for dir := range strings.SplitSeq(SafePath, ":") {
				paths = append(paths, filepath.Join(dir, entry))
			}
		}
		for _, p := range paths {
			if st, err := statFollow(p); err == nil && st.regular() {
				id := identity{st.dev, st.ino}
				if !slices.Contains(out[id], key) {
					out[id] = append(out[id], key)
				}
			}
		}
	}
	for _, e := range c.opts.Blocked {
		e = strings.TrimSpace(e)
		add(strings.ToLower(filepath.Base(e)), e)
	}
	if c.opts.Allowed != nil {
		for _, e := range *c.opts.Allowed {
			add(allowedKey(e), strings.TrimSpace(e))
		}
	}
	return out
}

// allowedKey is how commands.allowed entries appear in the policy's data:
// an absolute path cleaned, a name lower-cased.
func allowedKey(e string) string {
	e = strings.TrimSpace(e)
	if filepath.IsAbs(e) {
		return filepath.Clean(e)
	}
	return strings.ToLower(e)
}

// chain is res and the interpreters it runs under, each examined.
func (c *Commands) chain(ctx context.Context, t *trust, res Resolved) ([]program, error) {
	var out []program
	path := res.Path
	for depth := 0; ; depth++ {
		p := c.examine(ctx, t, path)
		if depth > 0 {
			p.role = "interpreter"
		}
		if !p.regular {
			return append(out, p), nil
		}
		interp, arg, isScript, err := shebang(p.real)
		if err != nil {
			p.untrusted = append(p.untrusted, err.Error())
		}
		out = append(out, p)
		if !isScript || err != nil {
			return out, nil
		}
		if depth >= maxInterpreters {
			out[len(out)-1].untrusted = append(out[len(out)-1].untrusted, fmt.Sprintf("more than %d nested #! interpreters", maxInterpreters))
			return out, nil
		}
		ir, err := Resolve(interp)
		if err != nil {
			out[len(out)-1].untrusted = append(out[len(out)-1].untrusted, fmt.Sprintf("#! interpreter of %s: %v", p.real, err))
			return out, nil
		}
		if filepath.Base(ir.Real) == "env" && filepath.Base(ir.Path) == "env" {
			tramp := c.examine(ctx, t, ir.Path)
			tramp.role, tramp.trampoline = "interpreter", true
			name := strings.TrimSpace(arg)
			switch {
			case name == "":
				tramp.untrusted = append(tramp.untrusted, fmt.Sprintf("%s: #!%s names no program", p.real, ir.Path))
			case strings.HasPrefix(name, "-"):
				tramp.untrusted = append(tramp.untrusted, fmt.Sprintf("%s: options to env in a #! line (%q) are not decided", p.real, name))
			}
			out = append(out, tramp)
			if len(tramp.untrusted) > 0 {
				return out, nil
			}
			er, err := Resolve(name)
			if err != nil {
				out[len(out)-1].untrusted = append(out[len(out)-1].untrusted, fmt.Sprintf("#!%s %s: %v", ir.Path, name, err))
				return out, nil
			}
			path = er.Path
			continue
		}
		path = ir.Path
	}
}

// examine applies the trust rules to the file at path (absolute), and
// finds its identity.
func (c *Commands) examine(ctx context.Context, t *trust, path string) program {
	p := program{path: path, real: path}
	problem := func(format string, args ...any) { p.untrusted = append(p.untrusted, fmt.Sprintf(format, args...)) }
	cur := path
	for hop := 0; ; hop++ {
		if hop > maxLinks {
			problem("%s: too many symlinks", path)
			return p
		}
		dir, err := filepath.EvalSymlinks(filepath.Dir(cur))
		if err != nil {
			problem("%s: %v", cur, err)
			return p
		}
		if msg := t.checkDirs(dir); msg != "" {
			problem("%s", msg)
		}
		cur = filepath.Join(dir, filepath.Base(cur))
		if r := t.insideRoot(cur); r != "" {
			problem("%s is inside filesystem.allowed_paths (%s): a tool could have written it", cur, r)
		}
		st, err := statNoFollow(cur)
		if err != nil {
			problem("%s: %v", cur, err)
			return p
		}
		if st.symlink() {
			target, err := os.Readlink(cur)
			if err != nil {
				problem("%s: %v", cur, err)
				return p
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			cur = filepath.Clean(target)
			continue
		}
		p.real, p.dev, p.ino = cur, st.dev, st.ino
		p.regular = st.regular()
		if !p.regular {
			problem("%s is not a regular file", cur)
		}
		if st.mode&0o022 != 0 {
			problem("%s is writable by group or others", cur)
		}
		if !t.ownerOK(st.uid) {
			problem("%s is owned by uid %d, not root or the server's user", cur, st.uid)
		}
		break
	}
	if c.toolMayWrite(ctx, p.real) {
		problem("%s is a path the filesystem policy lets tools write", p.real)
	}
	p.sameAs = t.identities[identity{p.dev, p.ino}]
	return p
}

// checkDirs checks dir (real, absolute) and every directory above it.
func (t *trust) checkDirs(dir string) string {
	if msg, ok := t.checked[dir]; ok {
		return msg
	}
	msg := ""
	st, err := statNoFollow(dir)
	switch {
	case err != nil:
		msg = dir + " cannot be examined"
	case st.mode&0o022 != 0:
		msg = fmt.Sprintf("%s is writable by group or others (mode %o)", dir, st.mode&0o7777)
	case !t.ownerOK(st.uid):
		msg = fmt.Sprintf("%s is owned by uid %d, not root or the server's user", dir, st.uid)
	case dir != "/":
		msg = t.checkDirs(filepath.Dir(dir))
	}
	t.checked[dir] = msg
	return msg
}

func (t *trust) insideRoot(path string) string {
	for _, r := range t.roots {
		if path == r || strings.HasPrefix(path, r+"/") {
			return r
		}
	}
	return ""
}

// toolMayWrite asks the filesystem policy whether a tool could write
// path: it catches allowed globs whose static prefix is "/" (**/x).
func (c *Commands) toolMayWrite(ctx context.Context, path string) bool {
	in := ast.NewObject(
		ast.Item(ast.InternedTerm("path"), ast.StringTerm(path)),
		ast.Item(ast.InternedTerm("operation"), ast.StringTerm("write")),
		ast.Item(ast.InternedTerm("tool"), ast.StringTerm(CallFrom(ctx).Tool)),
	)
	d, err := c.decide.Decide(ctx, engine.Filesystem, in)
	return err != nil || d.Allow // an error counts as writable: fail closed
}

// What was read from executables, remembered while each file stays the
// same (see filememo): the #! line of a script, the dynamic loader of an
// ELF program. Every launch and every command asks again.
var (
	shebangs filememo.Memo[shebangLine]
	loaders  filememo.Memo[string]
)

type shebangLine struct {
	interp, arg string
	ok          bool
	err         error
}

// shebang is readShebang, remembered while the file at path is the same.
func shebang(path string) (interp, arg string, ok bool, err error) {
	l := shebangs.Get(path, func(path string) (shebangLine, bool) {
		interp, arg, ok, err := readShebang(path)
		return shebangLine{interp, arg, ok, err}, err == nil
	})
	return l.interp, l.arg, l.ok, l.err
}

// executables is sandbox.Executables, each file's dynamic loader
// remembered while the file is the same.
func executables(paths ...string) []string {
	return sandbox.ExecutablesWith(func(p string) string {
		return loaders.Get(p, func(p string) (string, bool) {
			l, err := sandbox.ReadInterpreter(p)
			return l, err == nil
		})
	}, paths...)
}

// readShebang reads the "#!" line of the file at path, if it has one: the
// interpreter and its optional argument (the rest of the line, as the
// kernel passes it).
func readShebang(path string) (interp, arg string, ok bool, err error) {
	// Non-blocking: a FIFO swapped in after the stat must not hang us.
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return "", "", false, fmt.Errorf("%s: %v", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", "", false, fmt.Errorf("%s is not a regular file", path)
	}
	buf := make([]byte, maxShebang)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", "", false, fmt.Errorf("%s: %v", path, err)
	}
	buf = buf[:n]
	if !bytes.HasPrefix(buf, []byte("#!")) {
		return "", "", false, nil
	}
	line, _, found := bytes.Cut(buf[2:], []byte("\n"))
	if !found && n == maxShebang {
		return "", "", true, fmt.Errorf("%s: #! line longer than %d bytes", path, maxShebang-1)
	}
	fields := strings.TrimLeft(string(line), " \t")
	interp, arg, _ = strings.Cut(fields, " ")
	if i := strings.IndexByte(interp, '\t'); i >= 0 {
		interp, arg = interp[:i], interp[i+1:]+" "+arg
	}
	arg = strings.Trim(arg, " \t\r")
	interp = strings.TrimRight(interp, "\r")
	if !filepath.IsAbs(interp) {
		return "", "", true, fmt.Errorf("%s: #! interpreter %q is not an absolute path", path, interp)
	}
	return interp, arg, true, nil
}

// sandboxExecs is what a child may execute: every file of the chain, the
// files commands.allowed names that are trusted and not blocked, and the
// dynamic loader of each.
func (c *Commands) sandboxExecs(ctx context.Context, t *trust, chain []program) []string {
	var files []string
	add := func(p string) { files = append(files, p) }
	for _, p := range chain {
		add(p.real)
	}
	if c.opts.Allowed == nil {
		return executables(files...)
	}
	blocked := map[string]bool{}
	for _, b := range c.opts.Blocked {
		blocked[strings.ToLower(filepath.Base(strings.TrimSpace(b)))] = true
	}
	for _, e := range *c.opts.Allowed {
		res, err := Resolve(strings.TrimSpace(e))
		if err != nil {
			continue
		}
		p := c.examine(ctx, t, res.Path)
		if len(p.untrusted) > 0 || blocked[strings.ToLower(filepath.Base(res.Path))] || blocked[strings.ToLower(filepath.Base(p.real))] {
			continue
		}
		if slices.ContainsFunc(p.sameAs, func(k string) bool { return blocked[k] }) {
			continue
		}
		add(p.real)
	}
	return executables(files...)
}
