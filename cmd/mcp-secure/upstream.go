package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcp-secure/mcp-secure/plugins/upstream"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/pins"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// Audit kinds of the upstream servers.
const (
	kindUpstream       = "upstream"        // a server's process started
	kindToolDefinition = "tool_definition" // pinned, changed, approved
)

// upstreamReadOnly are what a server commonly needs beyond the system
// paths, none of it secret: TLS configuration and CA certificates (not
// /etc/ssl/private) and the resolver's files.
var upstreamReadOnly = []string{"/etc/ssl/openssl.cnf", "/etc/ssl/certs", "/etc/ca-certificates", "/etc/hosts", "/etc/resolv.conf"}

// upstreamCPU is an upstream's CPU-time limit: it lives as long as the
// server; past the limit it is killed and restarted.
const upstreamCPU = 24 * time.Hour

// startUpstreams starts the servers of the policy's servers: section.
// One that cannot start is logged and left out: the others, and the
// server's own tools, still serve.
func startUpstreams(ctx context.Context, pol *policy.Policy, cmds *guard.Commands, alog *audit.Logger, log *slog.Logger) []plugin.Plugin {
	if len(pol.Servers) == 0 {
		return nil
	}
	store, err := pins.Open(pins.PathFor(pol.Audit.LogFile))
	if err != nil {
		log.Error("upstream servers not started: the tool pins cannot be read", "err", err)
		return nil
	}
	pa := &pinAudit{store: store, audit: alog, log: log}
	var out []plugin.Plugin
	for _, name := range pol.ServerNames() {
		s := pol.Servers[name]
		l, desc, err := newLauncher(pol, name, s, cmds, alog, log)
		if err != nil {
			log.Error("upstream server not started", "upstream", name, "err", err)
			continue
		}
		u, err := upstream.New(ctx, upstream.Config{
			Name: name, Prefix: s.ToolPrefix(name), Version: version,
			Launcher: l, Pins: pa, Logger: log,
		})
		if err != nil {
			log.Error("upstream server not started", "upstream", name, "err", err)
			continue
		}
		log.Info("upstream server started", "upstream", name, "tools", len(u.Tools()), "sandbox", desc)
		out = append(out, u)
	}
	return out
}

// launcher starts one upstream in the sandbox.
type launcher struct {
	name   string
	target sandbox.Target
	env    map[string]string
	audit  *audit.Logger
	log    *slog.Logger
}

var _ upstream.Launcher = (*launcher)(nil)

// newLauncher resolves the server's command (and its #! interpreter) and
// builds its sandbox: the policy's filesystem roots (less the server's
// own files) read-write, the system paths and sandbox.read read-only,
// the policy's TCP ports, each narrowed by the server's sandbox section.
func newLauncher(pol *policy.Policy, name string, s policy.Server, cmds *guard.Commands, alog *audit.Logger, log *slog.Logger) (*launcher, string, error) {
	desc, ok := cmds.Confinement()
	if !ok {
		return nil, "", fmt.Errorf("cannot be confined: %s", desc)
	}
	res, err := guard.Resolve(s.Command)
	if err != nil {
		return nil, "", err
	}
	execs := []string{res.Real}
	if interp, err := shebangInterpreter(res.Real); err != nil {
		return nil, "", err
	} else if interp != "" {
		execs = append(execs, interp)
	}
	rules := cmds.Rules(sandbox.Executables(execs...)...)
	if sp := s.Sandbox.Paths; sp != nil {
		rules.ReadWrite = narrowPaths(rules.ReadWrite, *sp)
	}
	if sp := s.Sandbox.Ports; sp != nil {
		rules.ConnectTCP = slices.DeleteFunc(rules.ConnectTCP, func(p uint16) bool { return !slices.Contains(*sp, int(p)) })
	}
	rules.ReadOnly = append(rules.ReadOnly, upstreamReadOnly...)
	own, _ := ownFiles(pol)
	for _, r := range s.Sandbox.Read {
		for _, f := range own {
			if within(f.path, r) || within(r, f.path) {
				return nil, "", fmt.Errorf("servers.%s.sandbox.read: %s would expose the server's %s (%s)", name, r, f.what, f.path)
			}
		}
		rules.ReadOnly = append(rules.ReadOnly, r)
	}
	argv := append([]string{res.Path}, s.Args...)
	l := &launcher{name: name, env: s.Env, audit: alog, log: log, target: sandbox.Target{
		Path: res.Real, Args: argv, Dir: "/", Rules: rules,
		Limits: sandbox.Limits{CPU: upstreamCPU}, Unconfined: pol.Commands.Unconfined,
	}}
	return l, fmt.Sprintf("%s; read-write %v, TCP ports %v", desc, rules.ReadWrite, rules.ConnectTCP), nil
}

// narrowPaths keeps what both allow: the entries of rw at or below one of
// paths, and each of paths below an entry of rw (rw is already carved
// around the server's own files, so a path below an entry holds none).
func narrowPaths(rw, paths []string) []string {
	var out []string
	for _, e := range rw {
		for _, p := range paths {
			p = guard.RealPath(p)
			switch {
			case within(e, p):
				out = append(out, e)
			case within(p, e):
				out = append(out, p)
			default:
				continue
			}
			break
		}
	}
	for _, d := range sandbox.SystemReadWrite {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// shebangInterpreter is the interpreter a #! script names (what
// /usr/bin/env X starts, for env), or "" for a binary.
func shebangInterpreter(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, _ := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return "", nil
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", fmt.Errorf("%s: empty #! line", path)
	}
	interp := fields[0]
	if filepath.Base(interp) == "env" && len(fields) > 1 {
		r, err := guard.Resolve(fields[len(fields)-1])
		if err != nil {
			return "", fmt.Errorf("%s: #! line: %w", path, err)
		}
		return r.Real, nil
	}
	r, err := guard.Resolve(interp)
	if err != nil {
		return "", fmt.Errorf("%s: #! line: %w", path, err)
	}
	return r.Real, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// environment is the child's: PATH, HOME, locale, and the server's env
// section with ${VAR} taken from our environment now.
func (l *launcher) environment() ([]string, error) {
	env := []string{"PATH=" + guard.SafePath, "HOME=/nonexistent"}
	for _, k := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	names := make([]string, 0, len(l.env))
	for k := range l.env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		var missing string
		v := envRef.ReplaceAllStringFunc(l.env[k], func(ref string) string {
			name := ref[2 : len(ref)-1]
			val, ok := os.LookupEnv(name)
			if !ok {
				missing = name
			}
			return val
		})
		if missing != "" {
			return nil, fmt.Errorf("servers.%s.env.%s: ${%s} is not set", l.name, k, missing)
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}

// Launch starts the server's process in the sandbox, audited.
func (l *launcher) Launch(ctx context.Context) (*upstream.Process, error) {
	env, err := l.environment()
	if err != nil {
		return nil, err
	}
	t := l.target
	t.Env = env
	life, kill := context.WithCancel(context.Background())
	c := sandbox.Command(life, t)
	stdin, err := c.StdinPipe()
	if err != nil {
		kill()
		return nil, err
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		kill()
		return nil, err
	}
	c.Stderr = &lineLog{log: l.log.With("upstream", l.name)}
	names := make([]string, 0, len(l.env))
	for k := range l.env {
		names = append(names, k)
	}
	slices.Sort(names)
	in := map[string]any{"server": l.name, "argv": t.Args, "executable": t.Path, "env": names,
		"read_write": t.ReadWrite, "tcp_ports": t.ConnectTCP}
	if err := c.Start(); err != nil {
		kill()
		l.audit.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: kindUpstream, Result: audit.ResultError, Reasons: []string{err.Error()}, Input: in})
		return nil, err
	}
	in["pid"] = c.Pid()
	if err := l.audit.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: kindUpstream, Result: audit.ResultAllow, Reasons: []string{"started"}, Input: in}); err != nil {
		kill()
		c.Wait()
		return nil, fmt.Errorf("the audit record could not be written: %w", err)
	}
	var once sync.Once
	var werr error
	return &upstream.Process{
		Stdout: stdout, Stdin: stdin,
		Wait: func() error { once.Do(func() { werr = c.Wait() }); return werr },
		Kill: kill,
	}, nil
}

// lineLog writes a child's stderr to the log, a line at a time, each
// capped; the log handler redacts.
type lineLog struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *lineLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineLog) emit(line []byte) {
	if len(line) > 4096 {
		line = line[:4096]
	}
	if s := strings.TrimSpace(string(line)); s != "" {
		w.log.Info("upstream stderr", "line", s)
	}
}

// pinAudit keeps the pins and audits what changes them.
type pinAudit struct {
	store *pins.Store
	audit *audit.Logger
	log   *slog.Logger
}

var _ upstream.Pins = (*pinAudit)(nil)

func (p *pinAudit) Observe(ctx context.Context, server string, d upstream.Definition) (string, error) {
	def := pins.Definition{Name: d.Name, Description: d.Description, InputSchema: d.InputSchema, OutputSchema: d.OutputSchema,
		Title: d.Title, Annotations: d.Annotations}
	h, err := pins.Hash(def)
	if err != nil {
		return "", err
	}
	pinned, _ := p.store.Pinned(d.Tool)
	def.Name = d.Tool
	out, err := p.store.Observe(def, h)
	if err != nil {
		return "", err
	}
	in := map[string]any{"server": server, "upstream_tool": d.Name, "hash": h}
	switch out {
	case pins.Pinned:
		err = p.audit.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: kindToolDefinition, Tool: d.Tool,
			Result: audit.ResultAllow, Reasons: []string{"first seen: definition pinned"}, Input: in})
	case pins.Changed:
		in["pinned"] = pinned
		p.log.Warn("upstream tool definition changed since it was pinned; calls are denied until `mcp-secure tools approve` re-pins it", "tool", d.Tool)
		err = p.audit.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: kindToolDefinition, Tool: d.Tool,
			Result: audit.ResultDeny, Reasons: []string{"definition changed since it was pinned"}, Input: in})
	}
	if err != nil {
		return "", fmt.Errorf("the audit record could not be written: %w", err)
	}
	return h, nil
}

func (p *pinAudit) State(tool, hash string) plugin.DefinitionState {
	pinned, err := p.store.Pinned(tool)
	if err != nil {
		return plugin.DefinitionState{Changed: true, Hash: hash}
	}
	// Every tool is pinned before it is offered: a pin that is missing
	// now was removed, and nothing was approved. Deny until it is.
	return plugin.DefinitionState{Changed: pinned != hash, Hash: hash, Pinned: pinned}
}
