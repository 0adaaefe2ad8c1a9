package guard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// SafePath is the PATH a bare command name is looked up in, and the PATH
// of every child process: the process's own PATH is never used.
const SafePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultMaxOutput caps stdout and stderr of a command each.
const DefaultMaxOutput = 1 << 20

// killGrace is how long a killed process group may take to release its
// pipes before Exec stops waiting.
const killGrace = 2 * time.Second

// inheritedEnv are the only variables a child takes from the server.
var inheritedEnv = []string{"LANG", "LC_ALL", "LC_CTYPE", "TZ"}

// Commands decides and runs every process of the plugins.
type Commands struct {
	decide  Decider
	audit   Auditor
	files   *Files
	log     *slog.Logger
	opts    CommandsOptions
	support sandbox.Support

	idMu  sync.Mutex
	idMap map[identity][]string // read-only once built
	idAt  time.Time

	// own is OwnEnv and every name AddOwnEnv added since: a sorted
	// slice, never changed once stored (a new one replaces it).
	own   atomic.Pointer[[]string]
	ownMu sync.Mutex // one AddOwnEnv at a time
}

var _ plugin.Commands = (*Commands)(nil)

// CommandsOptions tune the command guard; nil means no allowlist, no
// blocklist for identity checks, confinement required, and no TCP.
type CommandsOptions struct {
	Logger *slog.Logger
	// Allowed (nil: no allowlist) and Blocked are commands.allowed and
	// commands.blocked: the guard finds the files they name, so a hard
	// link or a #! interpreter is recognised by device and inode.
	Allowed *[]string
	Blocked []string
	// Unconfined runs children without Landlock (commands.unconfined);
	// without it, where the kernel cannot confine them, they do not run.
	Unconfined bool
	// ConnectTCP are the TCP ports children may connect to (any host).
	ConnectTCP []uint16
	// AllowUDP lets children send UDP to any host and port
	// (commands.allow_udp); without it the sandbox refuses UDP sockets.
	AllowUDP bool
	// ReadOnly are paths children may read besides the filesystem roots
	// (read-write) and sandbox.SystemReadOnly.
	ReadOnly []string
	// Limits are the children's resource limits (zero: the defaults).
	Limits sandbox.Limits
	// DryRun, when set, also decides each command under the dry-run
	// policy, for the record only.
	DryRun DryRunner
	// Protected are the server's own files and directories (audit log,
	// policy, Rego modules, plugin data): children get no access to them
	// even below an allowed root.
	Protected []ProtectedPath
	// OwnEnv are variables the server reads for its credentials besides
	// OTEL_* and MCP_SECURE_* (the bundle token variable, every ${VAR}
	// the policy takes): no child is given them, nor, for an upstream, a
	// value taken from them. AddOwnEnv adds to them.
	OwnEnv []string
}

// ProtectedPath is one of the server's own files or directories. With
// Prefix, every name in its directory that starts with its base name is
// protected too (rotated logs, a database's -wal and -shm files).
type ProtectedPath struct {
	Path   string
	Prefix bool
	// What it is, for messages ("audit log").
	What string
	// Owners, when set, are the upstream servers whose code it is: they
	// may still be given it to read (their sandbox.read), and no other
	// child.
	Owners []string
}

func (p ProtectedPath) what() string {
	if p.What == "" {
		return "own file"
	}
	return p.What
}

// NewCommands returns the command guard; the working directory of each
// command is decided through files, and children are confined to its
// roots.
func NewCommands(d Decider, a Auditor, files *Files, opts *CommandsOptions) *Commands {
	c := &Commands{decide: d, audit: a, files: files, support: sandbox.Probe()}
	if opts != nil {
		c.opts = *opts
	}
	c.log = c.opts.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	own := slices.Compact(slices.Sorted(slices.Values(c.opts.OwnEnv)))
	c.own.Store(&own)
	return c
}

// AddOwnEnv adds names to the server's own variables (OwnEnv): a policy
// loaded after start-up may take more with ${VAR}. From then on no child
// started through the door is given one, by name or, for an upstream,
// through its ${VAR}; a child started before keeps its environment. The
// set only grows: what an earlier policy took may still be in use (the
// settings a reload keeps, the telemetry exporters).
func (c *Commands) AddOwnEnv(names ...string) {
	c.ownMu.Lock()
	defer c.ownMu.Unlock()
	cur := c.ownEnv()
	next := slices.Clone(cur)
	for _, n := range names {
		if !slices.Contains(next, n) {
			next = append(next, n)
		}
	}
	if len(next) == len(cur) {
		return
	}
	slices.Sort(next)
	c.own.Store(&next)
}

// ownEnv are the server's own variables as of now.
func (c *Commands) ownEnv() []string {
	if p := c.own.Load(); p != nil {
		return *p
	}
	return c.opts.OwnEnv
}

// Confinement says, in one line, how children are confined; ok is false
// when commands cannot run at all (no Landlock and not unconfined).
func (c *Commands) Confinement() (desc string, ok bool) {
	udp := ""
	if c.opts.AllowUDP {
		udp = "; UDP to any host and port allowed by policy (commands.allow_udp: true)"
	}
	switch {
	case runtime.GOOS == "windows":
		return "commands refused: the command door is not available on windows", false
	case c.opts.Unconfined && c.support.Confines():
		return "unconfined by policy (commands.unconfined: true; Landlock ABI " + fmt.Sprint(c.support.ABI) + " is available): " + sandbox.UnconfinedLeft + udp, true
	case c.opts.Unconfined:
		return "unconfined by policy (commands.unconfined: true; " + c.support.Reason + "): " + sandbox.UnconfinedLeft + udp, true
	case c.support.Confines():
		return c.support.String() + udp, true
	}
	return "commands refused: " + c.support.Reason + " (set commands.unconfined: true to run them without Landlock)", false
}

// Resolved is an executable as decided: the path it was found at and the
// real file behind its symlinks.
type Resolved struct {
	Path, Real string
}

// Resolve finds the executable argv0 names: a bare name is looked up in
// SafePath, a path must be absolute. Symlinks are followed to the real
// file, whose name the policy also sees (nc -> netcat).
func Resolve(argv0 string) (Resolved, error) {
	if argv0 == "" || strings.IndexByte(argv0, 0) >= 0 {
		return Resolved{}, errors.New("empty command or NUL byte in command")
	}
	var candidates []string
	switch {
	case filepath.IsAbs(argv0):
		candidates = []string{filepath.Clean(argv0)}
	case strings.ContainsRune(argv0, '/'):
		return Resolved{}, fmt.Errorf("command %q: give an absolute path or a bare name", argv0)
	default:
		for dir := range strings.SplitSeq(SafePath, ":") {
			candidates = append(candidates, filepath.Join(dir, argv0))
		}
	}
	for _, c := range candidates {
		st, err := os.Stat(c)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(c)
		if err != nil {
			return Resolved{}, fmt.Errorf("command %q: %w", argv0, err)
		}
		return Resolved{Path: c, Real: real}, nil
	}
	if len(candidates) == 1 {
		return Resolved{}, fmt.Errorf("command %q: no executable file there", argv0)
	}
	return Resolved{}, fmt.Errorf("command %q: no executable found (looked in %s)", argv0, SafePath)
}

// Check decides argv as it would run in dir, and audits it. It resolves
// the executable but starts nothing.
func (c *Commands) Check(ctx context.Context, argv []string, dir string) (Resolved, error) {
	res, _, _, err := c.check(ctx, argv, dir)
	return res, err
}

func (c *Commands) check(ctx context.Context, argv []string, dir string) (Resolved, []program, *trust, error) {
	target := "command " + quoteArgv(argv)
	deny := func(reasons ...string) (Resolved, []program, *trust, error) {
		c.record(ctx, argv, Resolved{}, dir, audit.ResultDeny, engine.Decision{Reasons: reasons}, 0, nil)
		return Resolved{}, nil, nil, &DeniedError{Kind: audit.KindCommand, Target: target, Reasons: reasons}
	}
	if len(argv) == 0 {
		return deny("argv is empty")
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return deny("an argument contains a NUL byte")
		}
	}
	res, err := Resolve(argv[0])
	if err != nil {
		return deny(err.Error())
	}
	start := time.Now()
	t := c.newTrust()
	chain, err := c.chain(ctx, t, res)
	if err != nil {
		return deny(err.Error())
	}
	input := commandInput(ctx, argv, dir, chain)
	d, err := c.decide.Decide(ctx, engine.Commands, input)
	result := audit.ResultAllow
	switch {
	case err != nil:
		result = audit.ResultError
		c.log.Error("command decision failed; denying", "argv0", argv[0], "err", err)
	case !d.Allow:
		result = audit.ResultDeny
	}
	if werr := c.record(ctx, argv, res, dir, result, d, time.Since(start), dryRun(ctx, c.opts.DryRun, engine.Commands, input)); werr != nil {
		return Resolved{}, nil, nil, &DeniedError{Kind: audit.KindCommand, Target: target, Reasons: []string{"the audit record could not be written"}}
	}
	if result != audit.ResultAllow {
		return Resolved{}, nil, nil, &DeniedError{Kind: audit.KindCommand, Target: target, Reasons: d.Reasons}
	}
	return res, chain, t, nil
}

func (c *Commands) record(ctx context.Context, argv []string, res Resolved, dir, result string, d engine.Decision, took time.Duration, dry *audit.DryRun) error {
	call := CallFrom(ctx)
	in := map[string]any{"argv": argv, "cwd": dir}
	if res.Path != "" {
		in["executable"], in["resolved"] = res.Path, res.Real
	}
	return c.audit.Log(ctx, audit.Record{
		DecisionID:       audit.NewID(),
		ParentDecisionID: call.DecisionID,
		SessionID:        call.SessionID,
		RequestID:        call.RequestID,
		Path:             engine.Commands.Path(),
		Kind:             audit.KindCommand,
		Tool:             call.Tool,
		Result:           result,
		Reasons:          d.Reasons,
		Input:            in,
		DurationNS:       took.Nanoseconds(),
		DryRun:           dry,
		Revision:         cmp.Or(d.Revision, revisionOf(ctx, c.decide)),
	})
}

// systemDirs are the directories of SafePath: where a bare name in
// commands.allowed may be found.
var systemDirs = strings.Split(SafePath, ":")

// asProgram is p as the policy sees it.
func (p program) asProgram() engine.Program {
	return engine.Program{Executable: p.path, Real: p.real, Dev: p.dev, Inode: p.ino,
		Untrusted: p.untrusted, SameFileAs: p.sameAs, Trampoline: p.trampoline, Role: p.role}
}

func commandInput(ctx context.Context, argv []string, dir string, chain []program) ast.Value {
	call := CallFrom(ctx)
	in := engine.CommandInput{Argv: argv, Cwd: dir, Tool: call.Tool, RequestID: call.RequestID, Program: chain[0].asProgram()}
	for _, p := range chain[1:] {
		in.Interpreters = append(in.Interpreters, p.asProgram())
	}
	return in.Value()
}

// Exec decides and runs argv: never through a shell, in a decided working
// directory, with a scrubbed environment, capped output, and the whole
// process group killed when ctx ends.
func (c *Commands) Exec(ctx context.Context, argv []string, opts plugin.ExecOptions) (*plugin.ExecResult, error) {
	dir := opts.Dir
	if dir == "" {
		roots := c.files.Roots()
		if len(roots) == 0 {
			return nil, &DeniedError{Kind: audit.KindCommand, Target: "command " + quoteArgv(argv), Reasons: []string{"no working directory is allowed (filesystem.allowed_paths is empty)"}}
		}
		dir = roots[len(roots)-1] // the broadest allowed root
	}
	env, err := childEnv(opts.Env, c.ownEnv())
	if err != nil {
		c.record(ctx, argv, Resolved{}, dir, audit.ResultDeny, engine.Decision{Reasons: []string{err.Error()}}, 0, nil)
		return nil, &DeniedError{Kind: audit.KindCommand, Target: "command " + quoteArgv(argv), Reasons: []string{err.Error()}}
	}
	realDir, err := c.files.Canonical(ctx, dir, plugin.OpList)
	if err != nil {
		return nil, err
	}
	if _, ok := c.Confinement(); !ok {
		reason := "commands cannot be confined here (" + c.support.Reason + "); the policy must set commands.unconfined: true to run them without Landlock"
		c.record(ctx, argv, Resolved{}, realDir, audit.ResultDeny, engine.Decision{Reasons: []string{reason}}, 0, nil)
		return nil, &DeniedError{Kind: audit.KindCommand, Target: "command " + quoteArgv(argv), Reasons: []string{reason}}
	}
	res, chain, t, err := c.check(ctx, argv, realDir)
	if err != nil {
		return nil, err
	}
	limit := opts.MaxOutput
	if limit <= 0 {
		limit = DefaultMaxOutput
	}
	cmd := sandbox.Command(ctx, sandbox.Target{
		Path:       res.Real,
		Args:       argv, // argv[0] as given: some tools dispatch on it
		Env:        env,
		Dir:        realDir,
		Rules:      c.Rules(c.sandboxExecs(ctx, t, chain)...),
		Limits:     c.opts.Limits,
		Unconfined: c.opts.Unconfined,
	})
	cmd.WaitDelay = killGrace
	if opts.Stdin != nil {
		cmd.Stdin = strings.NewReader(string(opts.Stdin))
	}
	// Output goes through pipes of our own, so Wait returns when the
	// launcher exits, which it does once the command and everything it
	// started are gone.
	stdout, stderr := &capped{limit: limit}, &capped{limit: limit}
	var drained sync.WaitGroup
	var readers []*os.File
	pipe := func(dst *capped) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		readers = append(readers, r)
		drained.Add(1)
		go func() {
			defer drained.Done()
			io.Copy(dst, r)
		}()
		return w, nil
	}
	outW, err := pipe(stdout)
	if err != nil {
		return nil, fmt.Errorf("command %s: %w", filepath.Base(res.Path), err)
	}
	errW, err := pipe(stderr)
	if err != nil {
		outW.Close()
		drained.Wait()
		readers[0].Close()
		return nil, fmt.Errorf("command %s: %w", filepath.Base(res.Path), err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close() // the launcher holds its own copies
	errW.Close()
	if err == nil {
		err = cmd.Wait()
	}
	// Should a process still hold the pipes (the launcher was killed),
	// stop reading after a grace period rather than wait for it.
	done := make(chan struct{})
	go func() { drained.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(killGrace):
		stderr.markDropped()
	}
	for _, r := range readers {
		r.Close()
	}
	<-done
	out := &plugin.ExecResult{Stdout: stdout.bytes(), Stderr: stderr.bytes(), Truncated: stdout.dropped || stderr.dropped, ExitCode: cmd.ExitCode()}
	if ctx.Err() != nil {
		return out, fmt.Errorf("command %s: %w", filepath.Base(res.Path), context.Cause(ctx))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		var se *sandbox.SetupError
		if errors.As(err, &se) {
			c.log.Error("sandbox setup failed", "command", res.Real, "err", se.Msg)
		}
		return out, fmt.Errorf("command %s: %w", filepath.Base(res.Path), err)
	}
	return out, nil
}

// Rules are the sandbox of a child of this door that may execute execs
// (give each with its loader: sandbox.Executables): read-write below the
// filesystem roots, read-only below the system paths, TCP to the
// policy's ports, UDP only if the policy allows it. Other doors that
// start children (external plugins, upstream servers) start from these.
func (c *Commands) Rules(execs ...string) sandbox.Rules {
	return sandbox.Rules{
		ReadWrite:  append(c.writableRoots(), sandbox.SystemReadWrite...),
		ReadOnly:   append(slices.Clone(sandbox.SystemReadOnly), c.opts.ReadOnly...),
		Exec:       execs,
		ConnectTCP: slices.Clone(c.opts.ConnectTCP),
		AllowUDP:   c.opts.AllowUDP,
	}
}

// writableRoots are the filesystem roots a child may write below: "/"
// (from a pattern that starts with **) is left out, as Landlock would
// then allow the whole filesystem.
//
// Landlock can only grant, never carve a hole: a root that holds one of
// the server's own files is granted entry by entry instead, down the
// path to that file, leaving the file (and symlinks, whose targets could
// lie anywhere) out. What appears later in those directories stays out
// of reach of children: the carving fails closed.
//
// Landlock follows symlinks when it takes a path, so roots and protected
// paths are compared by their real paths: a root written through a
// symlink must not hide a protected file below its target.
func (c *Commands) writableRoots() []string {
	protected := make([]ProtectedPath, 0, 2*len(c.opts.Protected))
	for _, p := range c.opts.Protected {
		protected = append(protected, p)
		if real := RealPath(p.Path); real != p.Path {
			protected = append(protected, ProtectedPath{Path: real, Prefix: p.Prefix})
		}
	}
	var out []string
	for _, r := range c.files.Roots() {
		r = RealPath(r)
		if r != "/" {
			out = append(out, carve(r, protected)...)
		}
	}
	return out
}

// RealPath resolves path's symlinks, those of its longest existing
// ancestor when it does not exist yet; a path that cannot be resolved
// comes back as it is.
func RealPath(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(real, rest)
		}
		if p == filepath.Dir(p) {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// carve returns dir, or, when protected paths lie at or below it, the
// entries of dir that hold none of them (recursing into those that hold
// some below).
func carve(dir string, protected []ProtectedPath) []string {
	var inside []ProtectedPath
	for _, p := range protected {
		switch {
		case p.Path == dir || strings.HasPrefix(dir, p.Path+"/"):
			return nil // dir itself is protected
		case p.Prefix && filepath.Dir(p.Path) == filepath.Dir(dir) && strings.HasPrefix(filepath.Base(dir), filepath.Base(p.Path)):
			return nil
		case strings.HasPrefix(p.Path, dir+"/"):
			inside = append(inside, p)
		}
	}
	if len(inside) == 0 {
		return []string{dir}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // unreadable: grant nothing below it
	}
	var out []string
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		full := filepath.Join(dir, e.Name())
		if e.IsDir() {
			out = append(out, carve(full, inside)...)
			continue
		}
		if !protectedFile(full, inside) {
			out = append(out, full)
		}
	}
	return out
}

func protectedFile(path string, protected []ProtectedPath) bool {
	for _, p := range protected {
		if path == p.Path || (p.Prefix && filepath.Dir(path) == filepath.Dir(p.Path) && strings.HasPrefix(filepath.Base(path), filepath.Base(p.Path))) {
			return true
		}
	}
	return false
}

// childEnv is the scrubbed environment: a fixed PATH, HOME set to a
// harmless value, locale variables from the server, and what the plugin
// adds if every name is allowed ([plugin.EnvRefusal]; own are the
// server's further credential variables).
func childEnv(extra map[string]string, own []string) ([]string, error) {
	env := map[string]string{"PATH": SafePath, "HOME": "/nonexistent"}
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if err := plugin.CheckEnv(k, own); err != nil {
			return nil, err
		}
		v := extra[k]
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("environment variable %s contains a NUL byte", k)
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

func quoteArgv(argv []string) string {
	if len(argv) == 0 {
		return "[]"
	}
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// capped keeps the first limit bytes written and drops the rest, so a
// chatty process neither blocks nor fills memory.
type capped struct {
	mu      sync.Mutex
	buf     []byte
	limit   int
	dropped bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - len(c.buf)
	if room < len(p) {
		c.dropped = true
		if room > 0 {
			c.buf = append(c.buf, p[:room]...)
		}
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *capped) markDropped() {
	c.mu.Lock()
	c.dropped = true
	c.mu.Unlock()
}

func (c *capped) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf...)
}
