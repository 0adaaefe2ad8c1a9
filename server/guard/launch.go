package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/internal/filememo"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// The launcher door: external plugins and upstream MCP servers start
// their programs through it. The program is trusted because the operator
// listed its plugin directory or its server, so commands.allowed is not
// asked; everything else of the command door holds: the sandbox, the
// scrubbed environment, the server's own files carved out, the tree
// killed with the call.

var _ plugin.Launcher = (*Commands)(nil)

// longLivedCPU is the CPU limit of a process that serves many calls.
const longLivedCPU = 24 * time.Hour

// LaunchConfinement implements plugin.Launcher.
func (c *Commands) LaunchConfinement(spec *plugin.LaunchSpec) (string, error) {
	t, err := c.launchTarget(context.Background(), spec)
	if err != nil {
		return "", err
	}
	desc, _ := c.Confinement()
	rw := slices.DeleteFunc(slices.Clone(t.ReadWrite), func(p string) bool { return slices.Contains(sandbox.SystemReadWrite, p) })
	if spec.Dir == "" {
		return fmt.Sprintf("%s; read-write %v; execute %v; tcp ports %v", desc, rw, t.Exec, t.ConnectTCP), nil
	}
	return fmt.Sprintf("%s; read-write %v; read and execute %s; tcp ports %v", desc, rw, t.Dir, t.ConnectTCP), nil
}

// launchTarget is spec as the sandbox runs it.
func (c *Commands) launchTarget(ctx context.Context, spec *plugin.LaunchSpec) (sandbox.Target, error) {
	fail := func(format string, args ...any) (sandbox.Target, error) {
		return sandbox.Target{}, fmt.Errorf("%s: %s", spec.Who(), fmt.Sprintf(format, args...))
	}
	if spec.Dir != "" && !filepath.IsAbs(spec.Dir) {
		return fail("plugin directory %q is not absolute", spec.Dir)
	}
	if spec.Dir == "" && spec.Server == "" {
		return fail("no plugin directory")
	}
	if len(spec.Args) == 0 {
		return fail("empty argv")
	}
	if _, ok := c.Confinement(); !ok {
		return fail("its processes cannot be confined here (%s); the policy must set commands.unconfined: true to run them without Landlock", c.support.Reason)
	}
	res, err := Resolve(spec.Path)
	if err != nil {
		return fail("%v", err)
	}
	var pinned *sandbox.PinnedFile
	if spec.SHA256 != "" {
		sum, id, known, err := settledSHA256(ctx, spec.SHA256Path)
		if err != nil {
			return fail("executable %s: %v", spec.SHA256Path, err)
		}
		if sum != spec.SHA256 {
			return fail("sha256 mismatch: executable %s has sha256 %s, the manifest pins %s", spec.SHA256Path, sum, spec.SHA256)
		}
		// The launcher checks, just before it starts the target, that
		// the path it runs still names the file hashed: the executable
		// as resolved above when it is the file pinned (its path could
		// have named another file when it was resolved than when it was
		// hashed), else the script given to the interpreter.
		if known {
			path := spec.SHA256Path
			if spec.SHA256Path == spec.Path {
				path = res.Real
			}
			pinned = &sandbox.PinnedFile{Path: path, Dev: id.Dev, Ino: id.Ino, Size: id.Size, MtimeNs: id.MtimeNs, CtimeNs: id.CtimeNs}
		} else if sandbox.ChecksPinned {
			return fail("executable %s: the file hashed could not be identified for the launcher's check (it changed while it was hashed, or is not a regular file)", spec.SHA256Path)
		}
	}
	execs, err := interpreterChain(res.Real)
	if err != nil {
		return fail("%v", err)
	}
	own := c.ownEnv()
	env, err := childEnv(spec.Env, own)
	if err != nil {
		return fail("%v", err)
	}
	for _, name := range spec.EnvFrom {
		if plugin.IsOwnEnv(name, own) {
			return fail("${%s} is the server's own variable (credentials or configuration): no child is given its value", name)
		}
	}
	rules := c.Rules(executables(execs...)...)
	if spec.Paths != nil {
		rw := narrowPaths(c.writableRoots(), *spec.Paths)
		rules.ReadWrite = append(rw, sandbox.SystemReadWrite...)
	}
	if spec.Ports != nil {
		rules.ConnectTCP = slices.DeleteFunc(rules.ConnectTCP, func(p uint16) bool { return !slices.Contains(*spec.Ports, int(p)) })
	}
	for _, r := range spec.ReadOnly {
		if !filepath.IsAbs(r) {
			return fail("read-only path %q is not absolute", r)
		}
		if p, ok := c.exposes(filepath.Clean(r), spec.Server); ok {
			return fail("read-only path %s would expose the server's %s (%s)", r, p.what(), p.Path)
		}
		rules.ReadOnly = append(rules.ReadOnly, filepath.Clean(r))
	}
	dir := "/"
	if spec.Dir != "" {
		dir = RealPath(filepath.Clean(spec.Dir))
		rules.ReadOnly = append(rules.ReadOnly, dir)
		rules.Exec = append(rules.Exec, dir)
	}
	limits := c.opts.Limits
	if spec.LongLived {
		limits.CPU = longLivedCPU
	}
	return sandbox.Target{
		Path: res.Real, Args: spec.Args, Env: env, Dir: dir,
		Rules: rules, Limits: limits, Unconfined: c.opts.Unconfined,
		Pinned: pinned,
	}, nil
}

// exposes finds the protected path that path holds or lies within (a
// file that starts with a prefix-protected name included), comparing
// real paths too: Landlock follows symlinks. The code of upstream server
// owner is not protected from that server.
func (c *Commands) exposes(path, owner string) (ProtectedPath, bool) {
	real := RealPath(path)
	for _, p := range c.opts.Protected {
		if owner != "" && slices.Contains(p.Owners, owner) {
			continue
		}
		for _, pp := range []string{p.Path, RealPath(p.Path)} {
			for _, q := range []string{path, real} {
				if within(q, pp) || within(pp, q) || (p.Prefix && protectedFile(q, []ProtectedPath{{Path: pp, Prefix: true}})) {
					return p, true
				}
			}
		}
	}
	return ProtectedPath{}, false
}

// within says whether path is dir or lies below it.
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// ProgramChain is the program a command (a bare name, found as a launch
// finds it, or an absolute path) runs: its real path, then the #!
// interpreters it runs under. Every file of it is code the child runs.
func ProgramChain(command string) ([]string, error) {
	res, err := Resolve(command)
	if err != nil {
		return nil, err
	}
	return interpreterChain(res.Real)
}

// interpreterChain is path and the #! interpreters it runs under
// (#!/usr/bin/env X resolves X in SafePath).
func interpreterChain(path string) ([]string, error) {
	out := []string{path}
	for range maxInterpreters {
		interp, arg, ok, err := shebang(path)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		ir, err := Resolve(interp)
		if err != nil {
			return nil, fmt.Errorf("#! interpreter of %s: %v", path, err)
		}
		out = append(out, ir.Real)
		path = ir.Real
		if filepath.Base(ir.Real) == "env" {
			name := strings.TrimSpace(arg)
			if name == "" || strings.HasPrefix(name, "-") || strings.ContainsRune(name, ' ') {
				return nil, fmt.Errorf("%s: #!%s %s: name one program, without options", out[len(out)-2], interp, arg)
			}
			er, err := Resolve(name)
			if err != nil {
				return nil, fmt.Errorf("#!%s %s: %v", interp, name, err)
			}
			out = append(out, er.Real)
			path = er.Real
		}
	}
	return nil, fmt.Errorf("%s: more than %d nested #! interpreters", out[0], maxInterpreters)
}

// narrowPaths keeps what lies below both a root and a path: a path below
// a root is kept as the path, a root below a path as the root.
func narrowPaths(roots, paths []string) []string {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			continue
		}
		p = RealPath(filepath.Clean(p))
		for _, r := range roots {
			switch {
			case within(p, r):
				out = append(out, p)
			case within(r, p):
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Launch implements plugin.Launcher. A plugin's launch within a tool
// call is audited (kind command) with the call as its parent; every
// start of an upstream server is audited (kind upstream), and one that
// cannot be recorded is killed. A start the door refuses is audited the
// same way, as a denial.
func (c *Commands) Launch(ctx context.Context, spec *plugin.LaunchSpec) (plugin.Process, error) {
	t, err := c.launchTarget(ctx, spec)
	if err != nil {
		// A start refused once the server runs (a pin that no longer
		// matches, a variable that became the server's own): an
		// upstream server's (a restart) as its starts are, a plugin's
		// within a tool call as a command denial with the call as its
		// parent. The error is the caller's either way.
		switch call := CallFrom(ctx); {
		case spec.Server != "":
			_ = c.recordUpstream(ctx, spec, sandbox.Target{Path: spec.Path, Args: spec.Args}, audit.ResultDeny, err.Error(), 0)
		case call.Tool != "":
			_ = c.record(ctx, spec.Args, Resolved{Path: spec.Path}, spec.Dir, audit.ResultDeny, engine.Decision{Reasons: []string{err.Error()}}, 0, nil)
		}
		return nil, err
	}
	if call := CallFrom(ctx); call.Tool != "" && spec.Server == "" {
		reason := "trusted by the manifest of plugin directory " + t.Dir + " (plugins.external)"
		if werr := c.record(ctx, t.Args, Resolved{Path: t.Path, Real: t.Path}, t.Dir, audit.ResultAllow, engine.Decision{Reasons: []string{reason}}, 0, nil); werr != nil {
			return nil, &DeniedError{Kind: audit.KindCommand, Target: "command " + quoteArgv(t.Args), Reasons: []string{"the audit record could not be written"}}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &process{cancel: cancel}
	p.cmd = sandbox.Piped(ctx, t)
	p.cmd.WaitDelay = killGrace
	if err := p.cmd.Start(); err != nil {
		cancel()
		if spec.Server != "" {
			c.recordUpstream(ctx, spec, t, audit.ResultError, err.Error(), 0)
		}
		return nil, fmt.Errorf("%s: %w", spec.Who(), err)
	}
	p.in, p.out, p.errs = p.cmd.Pipes()
	if spec.Server != "" {
		if werr := c.recordUpstream(ctx, spec, t, audit.ResultAllow, "started", p.Pid()); werr != nil {
			p.Kill()
			p.Wait()
			p.in.Close()
			p.out.Close()
			p.errs.Close()
			return nil, fmt.Errorf("%s: the audit record of its start could not be written: %w", spec.Who(), werr)
		}
	}
	return p, nil
}

// recordUpstream audits the start of an upstream server's process: what
// runs, the names (not the values) of its environment, what its sandbox
// allows.
func (c *Commands) recordUpstream(ctx context.Context, spec *plugin.LaunchSpec, t sandbox.Target, result, reason string, pid int) error {
	in := map[string]any{"server": spec.Server, "argv": t.Args, "executable": t.Path,
		"env": slices.Sorted(maps.Keys(spec.Env)), "read_write": t.ReadWrite, "read_only": spec.ReadOnly, "tcp_ports": t.ConnectTCP}
	if pid > 0 {
		in["pid"] = pid
	}
	return c.audit.Log(context.WithoutCancel(ctx), audit.Record{
		DecisionID: audit.NewID(), Kind: audit.KindUpstream, Result: result, Reasons: []string{reason}, Input: in,
	})
}

// process is a started plugin process.
type process struct {
	cmd           *sandbox.Cmd
	cancel        context.CancelFunc
	in, out, errs *os.File
}

func (p *process) Stdin() io.WriteCloser { return p.in }
func (p *process) Stdout() io.ReadCloser { return p.out }
func (p *process) Stderr() io.ReadCloser { return p.errs }
func (p *process) Kill()                 { p.cancel() }
func (p *process) Pid() int              { return p.cmd.Pid() }

func (p *process) Wait() (int, error) {
	err := p.cmd.Wait()
	p.cancel()
	code := p.cmd.ExitCode()
	var ee *exec.ExitError
	switch {
	case errors.Is(err, sandbox.ErrLauncherStopped):
		return code, plugin.ErrLauncherStopped
	case err != nil && !errors.As(err, &ee):
		return code, err
	}
	return code, nil
}

// hashes remembers the sha256 of pinned executables while each file
// stays the same (see filememo): a start stats the file instead of
// reading all of it, and a file replaced or written since is hashed
// again.
var hashes filememo.Memo[string]

// settledSHA256 is fileSHA256 of a file whose times will move with any
// later write. File times are coarse (a clock tick; a second or two on
// some file systems): a file written again within the tick of its last
// change could keep every time it had, and pass the launcher's check
// with other contents. So a file changed less than a tick ago (by this
// machine's clock; a change time up to a tick ahead of it is waited
// out too) is hashed again once the tick is over, and one still
// changing then is refused.
func settledSHA256(ctx context.Context, path string) (sum string, id filememo.Identity, known bool, err error) {
	for try := 0; ; try++ {
		sum, id, known, err = fileSHA256(path)
		if err != nil || !known {
			return sum, id, known, err
		}
		tick := settle(id)
		wait := tick - time.Since(time.Unix(0, id.CtimeNs))
		switch {
		case wait <= 0:
			return sum, id, known, nil
		case wait > 2*tick:
			return "", filememo.Identity{}, false, fmt.Errorf("its change time lies in the future (%s)", time.Unix(0, id.CtimeNs).UTC().Format(time.RFC3339Nano))
		case try == 1:
			return "", filememo.Identity{}, false, fmt.Errorf("it is being written (changed again within %v)", tick)
		}
		if err := settleWait(ctx, wait); err != nil {
			return "", filememo.Identity{}, false, err
		}
	}
}

// settleWait waits d, or until ctx ends.
var settleWait = func(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// settle is how long after a file's last change its times are sure to
// move with the next write: two ticks of the kernel's clock (at 100 Hz)
// where times have sub-second parts, else the two seconds of the
// coarsest file systems.
func settle(id filememo.Identity) time.Duration {
	if id.CtimeNs%int64(time.Second) == 0 || id.MtimeNs%int64(time.Second) == 0 {
		return 2 * time.Second
	}
	return 20 * time.Millisecond
}

// fileSHA256 is the sha256 (hex) of the file at path, and the identity
// of the file hashed when it is known (see filememo.Memo.GetIdentified).
func fileSHA256(path string) (sum string, id filememo.Identity, known bool, err error) {
	var rerr error
	sum, id, known = hashes.GetIdentified(path, func(path string) (string, bool) {
		f, err := os.Open(path)
		if err != nil {
			rerr = err
			return "", false
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			rerr = err
			return "", false
		}
		return hex.EncodeToString(h.Sum(nil)), true
	})
	return sum, id, known, rerr
}
