package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// SafePath is the PATH a bare command name is looked up in, and the PATH
// of every child process: the process's own PATH is never used.
const SafePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultMaxOutput caps stdout and stderr of a command each.
const DefaultMaxOutput = 1 << 20

// killGrace is how long a killed process group may take to release its
// pipes before Exec stops waiting.
const killGrace = 2 * time.Second

// envName is what a variable a plugin adds may be called.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// forbiddenEnv are variables that change how a process loads or runs code;
// a plugin may not set them.
var forbiddenEnv = []string{
	"PATH", "HOME", "SHELL", "TMPDIR", "USER", "LOGNAME", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
	"GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "MALLOC_CHECK_",
	"NODE_OPTIONS", "NODE_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PERL5OPT", "PERL5LIB",
	"PERLLIB", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "GIT_SSH", "GIT_SSH_COMMAND",
	"GIT_EXEC_PATH", "GIT_CONFIG_GLOBAL", "GIT_PROXY_COMMAND", "EDITOR", "VISUAL", "PAGER",
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
	"BROWSER", "TERMINFO", "TERMINFO_DIRS", "LESSOPEN", "LESSCLOSE", "MANPAGER", "GIT_CONFIG_PARAMETERS",
}

// forbiddenEnvPrefixes cover whole families: loaders, shells, version
// control and ssh, interpreters, and per-user configuration lookups.
var forbiddenEnvPrefixes = []string{
	"LD_", "DYLD_", "BASH", "GLIBC_", "MALLOC_", "GCONV", "GIT_", "SSH_", "GPG", "XDG_",
	"PYTHON", "PERL", "RUBY", "NODE_", "NPM_", "JAVA", "_JAVA", "JDK_", "GO", "CARGO_", "RUST",
	"LUA_", "PHP", "TCL", "R_", "DOTNET_", "CURL_", "WGET", "SUDO_", "KRB5", "OPENSSL_", "SSL_",
}

// inheritedEnv are the only variables a child takes from the server.
var inheritedEnv = []string{"LANG", "LC_ALL", "LC_CTYPE", "TZ"}

// Commands decides and runs every process of the plugins.
type Commands struct {
	decide Decider
	audit  Auditor
	files  *Files
	log    *slog.Logger
}

var _ plugin.Commands = (*Commands)(nil)

// NewCommands returns the command guard; the working directory of each
// command is decided through files.
func NewCommands(d Decider, a Auditor, files *Files, log *slog.Logger) *Commands {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Commands{decide: d, audit: a, files: files, log: log}
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
	return Resolved{}, fmt.Errorf("command %q: no executable found (looked in %s)", argv0, SafePath)
}

// Check decides argv as it would run in dir, and audits it. It resolves
// the executable but starts nothing.
func (c *Commands) Check(ctx context.Context, argv []string, dir string) (Resolved, error) {
	target := "command " + quoteArgv(argv)
	deny := func(reasons ...string) (Resolved, error) {
		c.record(ctx, argv, Resolved{}, dir, audit.ResultDeny, reasons, 0)
		return Resolved{}, &DeniedError{Kind: audit.KindCommand, Target: target, Reasons: reasons}
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
	d, err := c.decide.Decide(ctx, engine.Commands, commandInput(ctx, argv, res, dir))
	result := audit.ResultAllow
	switch {
	case err != nil:
		result = audit.ResultError
		c.log.Error("command decision failed; denying", "argv0", argv[0], "err", err)
	case !d.Allow:
		result = audit.ResultDeny
	}
	if werr := c.record(ctx, argv, res, dir, result, d.Reasons, time.Since(start)); werr != nil {
		return Resolved{}, &DeniedError{Kind: audit.KindCommand, Target: target, Reasons: []string{"the audit record could not be written"}}
	}
	if result != audit.ResultAllow {
		return Resolved{}, &DeniedError{Kind: audit.KindCommand, Target: target, Reasons: d.Reasons}
	}
	return res, nil
}

func (c *Commands) record(ctx context.Context, argv []string, res Resolved, dir, result string, reasons []string, took time.Duration) error {
	call := CallFrom(ctx)
	in := map[string]any{"argv": argv, "cwd": dir}
	if res.Path != "" {
		in["executable"], in["resolved"] = res.Path, res.Real
	}
	return c.audit.Log(ctx, audit.Record{
		DecisionID:       audit.NewID(),
		ParentDecisionID: call.DecisionID,
		RequestID:        call.RequestID,
		Path:             engine.Commands.Path(),
		Kind:             audit.KindCommand,
		Tool:             call.Tool,
		Result:           result,
		Reasons:          reasons,
		Input:            in,
		DurationNS:       took.Nanoseconds(),
	})
}

func commandInput(ctx context.Context, argv []string, res Resolved, dir string) ast.Value {
	call := CallFrom(ctx)
	args := make([]*ast.Term, len(argv))
	for i, a := range argv {
		args[i] = ast.StringTerm(a)
	}
	return ast.NewObject(
		ast.Item(ast.InternedTerm("argv"), ast.ArrayTerm(args...)),
		ast.Item(ast.InternedTerm("executable"), ast.StringTerm(res.Path)),
		ast.Item(ast.InternedTerm("name"), ast.StringTerm(filepath.Base(res.Path))),
		ast.Item(ast.InternedTerm("resolved_name"), ast.StringTerm(filepath.Base(res.Real))),
		ast.Item(ast.InternedTerm("cwd"), ast.StringTerm(dir)),
		ast.Item(ast.InternedTerm("tool"), ast.StringTerm(call.Tool)),
		ast.Item(ast.InternedTerm("request_id"), ast.StringTerm(call.RequestID)),
	)
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
	env, err := childEnv(opts.Env)
	if err != nil {
		c.record(ctx, argv, Resolved{}, dir, audit.ResultDeny, []string{err.Error()}, 0)
		return nil, &DeniedError{Kind: audit.KindCommand, Target: "command " + quoteArgv(argv), Reasons: []string{err.Error()}}
	}
	realDir, err := c.files.Canonical(ctx, dir, plugin.OpList)
	if err != nil {
		return nil, err
	}
	res, err := c.Check(ctx, argv, realDir)
	if err != nil {
		return nil, err
	}
	limit := opts.MaxOutput
	if limit <= 0 {
		limit = DefaultMaxOutput
	}
	cmd := exec.CommandContext(ctx, res.Real)
	cmd.Args = argv // argv[0] as given: some tools dispatch on it
	cmd.Dir = realDir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = killGrace
	if opts.Stdin != nil {
		cmd.Stdin = strings.NewReader(string(opts.Stdin))
	}
	// Output goes through pipes of our own, so Wait returns when the
	// process exits rather than when every holder of the pipes has gone:
	// then the whole group is killed and the pipes drain.
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
	outW.Close() // the child holds its own copies
	errW.Close()
	if err == nil {
		err = cmd.Wait()
		// Whatever the command left running in its group goes with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A process that left the group (setsid) may still hold the pipes:
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
	out := &plugin.ExecResult{Stdout: stdout.bytes(), Stderr: stderr.bytes(), Truncated: stdout.dropped || stderr.dropped}
	if cmd.ProcessState != nil {
		out.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("command %s: %w", filepath.Base(res.Path), context.Cause(ctx))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return out, fmt.Errorf("command %s: %w", filepath.Base(res.Path), err)
	}
	return out, nil
}

// childEnv is the scrubbed environment: a fixed PATH, HOME set to a
// harmless value, locale variables from the server, and what the plugin
// adds if every name is allowed.
func childEnv(extra map[string]string) ([]string, error) {
	env := map[string]string{"PATH": SafePath, "HOME": "/nonexistent"}
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for k, v := range extra {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("environment variable name %q is not allowed", k)
		}
		if slices.Contains(forbiddenEnv, strings.ToUpper(k)) || slices.Contains(forbiddenEnv, k) || hasAnyPrefix(strings.ToUpper(k), forbiddenEnvPrefixes) {
			return nil, fmt.Errorf("environment variable %s may not be set by a tool", k)
		}
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

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
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
