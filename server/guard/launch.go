package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// The launcher door: external plugins start their own programs through
// it. The program is trusted because the operator listed its plugin
// directory, so commands.allowed is not asked; everything else of the
// command door holds: the sandbox, the scrubbed environment, the
// server's own files carved out, the tree killed with the call.

var _ plugin.Launcher = (*Commands)(nil)

// longLivedCPU is the CPU limit of a process that serves many calls.
const longLivedCPU = 24 * time.Hour

// LaunchConfinement implements plugin.Launcher.
func (c *Commands) LaunchConfinement(spec *plugin.LaunchSpec) (string, error) {
	t, err := c.launchTarget(spec)
	if err != nil {
		return "", err
	}
	desc, _ := c.Confinement()
	rw := slices.DeleteFunc(slices.Clone(t.ReadWrite), func(p string) bool { return slices.Contains(sandbox.SystemReadWrite, p) })
	return fmt.Sprintf("%s; read-write %v; read and execute %s; tcp ports %v", desc, rw, t.Dir, t.ConnectTCP), nil
}

// launchTarget is spec as the sandbox runs it.
func (c *Commands) launchTarget(spec *plugin.LaunchSpec) (sandbox.Target, error) {
	fail := func(format string, args ...any) (sandbox.Target, error) {
		return sandbox.Target{}, fmt.Errorf("plugin %s: %s", spec.Plugin, fmt.Sprintf(format, args...))
	}
	if !filepath.IsAbs(spec.Dir) {
		return fail("plugin directory %q is not absolute", spec.Dir)
	}
	if len(spec.Args) == 0 {
		return fail("empty argv")
	}
	if _, ok := c.Confinement(); !ok {
		return fail("its processes cannot be confined here (%s); the policy must set commands.unconfined: true to run them without Landlock", c.support.Reason)
	}
	dir := RealPath(filepath.Clean(spec.Dir))
	res, err := Resolve(spec.Path)
	if err != nil {
		return fail("%v", err)
	}
	execs, err := interpreterChain(res.Real)
	if err != nil {
		return fail("%v", err)
	}
	env, err := childEnv(spec.Env)
	if err != nil {
		return fail("%v", err)
	}
	rules := c.Rules(sandbox.Executables(execs...)...)
	if spec.Paths != nil {
		rw := narrowPaths(c.writableRoots(), *spec.Paths)
		rules.ReadWrite = append(rw, sandbox.SystemReadWrite...)
	}
	if spec.Ports != nil {
		rules.ConnectTCP = slices.DeleteFunc(rules.ConnectTCP, func(p uint16) bool { return !slices.Contains(*spec.Ports, int(p)) })
	}
	rules.ReadOnly = append(rules.ReadOnly, dir)
	rules.Exec = append(rules.Exec, dir)
	limits := c.opts.Limits
	if spec.LongLived {
		limits.CPU = longLivedCPU
	}
	return sandbox.Target{
		Path: res.Real, Args: spec.Args, Env: env, Dir: dir,
		Rules: rules, Limits: limits, Unconfined: c.opts.Unconfined,
	}, nil
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
			case p == r || strings.HasPrefix(p, r+"/"):
				out = append(out, p)
			case strings.HasPrefix(r, p+"/"):
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Launch implements plugin.Launcher. A launch within a tool call is
// audited (kind command) with the call as its parent.
func (c *Commands) Launch(ctx context.Context, spec *plugin.LaunchSpec) (plugin.Process, error) {
	t, err := c.launchTarget(spec)
	if err != nil {
		return nil, err
	}
	if call := CallFrom(ctx); call.Tool != "" {
		reason := "trusted by the manifest of plugin directory " + t.Dir + " (plugins.external)"
		if werr := c.record(ctx, t.Args, Resolved{Path: t.Path, Real: t.Path}, t.Dir, audit.ResultAllow, []string{reason}, 0); werr != nil {
			return nil, &DeniedError{Kind: audit.KindCommand, Target: "command " + quoteArgv(t.Args), Reasons: []string{"the audit record could not be written"}}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &process{cancel: cancel}
	var child []*os.File
	closeAll := func() {
		for _, f := range append(child, p.in, p.out, p.errs) {
			if f != nil {
				f.Close()
			}
		}
		cancel()
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			child = append(child, r, w)
		}
		return r, w, err
	}
	inR, inW, err1 := pipe()
	outR, outW, err2 := pipe()
	errR, errW, err3 := pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		closeAll()
		return nil, fmt.Errorf("plugin %s: %w", spec.Plugin, err)
	}
	child = []*os.File{inR, outW, errW}
	p.in, p.out, p.errs = inW, outR, errR
	p.cmd = sandbox.Command(ctx, t)
	p.cmd.WaitDelay = killGrace
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, errW
	err = p.cmd.Start()
	for _, f := range child { // the launcher holds its own copies
		f.Close()
	}
	if err != nil {
		p.in.Close()
		p.out.Close()
		p.errs.Close()
		cancel()
		return nil, fmt.Errorf("plugin %s: %w", spec.Plugin, err)
	}
	return p, nil
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
	if err != nil && !errors.As(err, &ee) {
		return code, err
	}
	return code, nil
}
