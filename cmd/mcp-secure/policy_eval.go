package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/jsonschema"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

type evalParams struct {
	policyFile string
	tool, args string
	client     string
	clientVer  string
	protocol   string
	network    string
	ip         string
	path, op   string
	exec       bool
	cwd        string
	input      string
	point      string
	explain    bool
	argv       []string
}

// ops are the filesystem operations the policy decides.
var ops = []string{string(plugin.OpRead), string(plugin.OpWrite), string(plugin.OpList), string(plugin.OpCreate), string(plugin.OpDelete), string(plugin.OpStat)}

func policyEvalCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newSubcommand("policy eval", "(--tool NAME [--args JSON] | --network HOST:PORT | --path PATH [--op OP] | --exec ARGV... | --input FILE) [flags]", `
Decides one request under the policy, as the server would: the policy is
checked as at start-up, and the input is built by the same code. Prints the
decision and its reasons; --explain also prints the rules that fired (in the
built-in and the policy's modules). Exit 0 allow, 1 deny, 2 error.

  --tool NAME --args JSON     a tools/call (data.mcp.tools)
  --network HOST:PORT         a connection (data.mcp.network): a host name is
                              decided as the lookup, and with --ip as the dial
                              to that address; an IP literal as the dial
  --path PATH --op OP         a file access (data.mcp.filesystem), through the
                              filesystem guard
  --exec ARGV...              a command (data.mcp.commands), resolved and
                              examined by the command guard; nothing runs
  --input FILE --point P      a raw input document for decision point P

Flags go before --exec: every argument after it is the command.`, stdout)
	c.flagsFirst = true
	var p evalParams
	policyFlag(c, &p.policyFile)
	c.fs.StringVar(&p.tool, "tool", "", "the tool called (or, with --network, --path or --exec, the tool acting)")
	c.fs.StringVar(&p.args, "args", "{}", "the call's arguments, a JSON object")
	c.fs.StringVar(&p.client, "client", "", "the client's name (clientInfo.name)")
	c.fs.StringVar(&p.clientVer, "client-version", "", "the client's version")
	c.fs.StringVar(&p.protocol, "protocol", "2025-11-25", "the MCP protocol version of the session")
	c.fs.StringVar(&p.network, "network", "", "decide a connection to `host:port`")
	c.fs.StringVar(&p.ip, "ip", "", "with --network and a host name: the `address` it resolved to")
	c.fs.StringVar(&p.path, "path", "", "decide an access to `path`")
	c.fs.StringVar(&p.op, "op", "read", "the operation on --path: "+strings.Join(ops, ", "))
	c.fs.BoolVar(&p.exec, "exec", false, "decide the command given by the remaining arguments")
	c.fs.StringVar(&p.cwd, "cwd", "", "with --exec: the working `directory` (default: the current one)")
	c.fs.StringVar(&p.input, "input", "", "decide the input document in `file` (JSON; - for stdin)")
	c.fs.StringVar(&p.point, "point", "tools", "with --input: the decision point (tools, network, filesystem, commands)")
	c.fs.BoolVar(&p.explain, "explain", false, "print the rules that fired")
	pos, err := c.parse(args, 0, -1)
	if err != nil {
		return err
	}
	modes := 0
	for _, set := range []bool{p.network != "", p.path != "", p.exec, p.input != ""} {
		if set {
			modes++
		}
	}
	switch {
	case modes > 1:
		return c.usageErr("give one of --network, --path, --exec and --input")
	case modes == 0 && p.tool == "":
		return c.usageErr("say what to decide: --tool, --network, --path, --exec or --input")
	case p.exec && len(pos) == 0:
		return c.usageErr("--exec needs the command: --exec git status")
	case !p.exec && len(pos) > 0:
		return c.usageErr("unexpected argument %q", pos[0])
	case p.ip != "" && p.network == "":
		return c.usageErr("--ip goes with --network")
	case !slices.Contains(ops, p.op):
		return c.usageErr("--op %q: want one of %s", p.op, strings.Join(ops, ", "))
	}
	p.argv = pos
	chk, err := checkPolicy(ctx, p.policyFile)
	if err != nil {
		return err
	}
	e := &evaluator{chk: chk, eng: chk.eng}
	results, err := e.decide(ctx, p)
	if err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("policy eval: %w", err)}
	}
	allowed := true
	for _, r := range results {
		allowed = allowed && (r.allow || r.aside)
		if err := r.print(stdout); err != nil {
			return err
		}
		if p.explain && r.input != nil {
			if err := explain(ctx, stdout, chk.cfg, r.point, r.input); err != nil {
				return &exitErr{code: exitUsage, err: fmt.Errorf("policy eval --explain: %w", err)}
			}
		}
	}
	if !allowed {
		return &exitErr{code: exitError, err: errDenied, quiet: true}
	}
	return nil
}

// errDenied is the exit status of a deny, with nothing more to print.
var errDenied = errors.New("denied")

// evalResult is one decision of `policy eval`.
type evalResult struct {
	what    string // "tool web_search", "connect 10.0.0.1:22"
	point   engine.Point
	input   ast.Value // nil when a guard refused before asking the policy
	allow   bool
	reasons []string
	// aside is a question a guard asked on the way (could a tool write
	// the executable?), not the verdict: its deny is no refusal.
	aside bool
}

func (r evalResult) print(w io.Writer) error {
	verdict := "deny"
	if r.allow {
		verdict = "allow"
	}
	if r.aside {
		verdict = "  asked on the way (not the verdict), " + verdict
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (%s)\n", verdict, r.what, r.point.Path())
	for _, reason := range r.reasons {
		fmt.Fprintf(&b, "  reason: %s\n", reason)
	}
	if r.input == nil && !r.allow {
		b.WriteString("  (refused by the guard before the policy was asked)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// evaluator decides through the engine the policy check built; the
// guards it hands the engine to record what they asked.
type evaluator struct {
	chk *checked
	eng *engine.Engine

	mu    sync.Mutex
	asked []asked        // what the guards asked the engine
	recs  []audit.Record // what the guards audited
}

type asked struct {
	point engine.Point
	input ast.Value
	d     engine.Decision
}

func (e *evaluator) Decide(ctx context.Context, point engine.Point, input ast.Value) (engine.Decision, error) {
	d, err := e.eng.Decide(ctx, point, input)
	e.mu.Lock()
	e.asked = append(e.asked, asked{point, input, d})
	e.mu.Unlock()
	return d, err
}

func (e *evaluator) Log(_ context.Context, r audit.Record) error {
	e.mu.Lock()
	e.recs = append(e.recs, r)
	e.mu.Unlock()
	return nil
}

var (
	_ guard.Decider = (*evaluator)(nil)
	_ guard.Auditor = (*evaluator)(nil)
)

func (e *evaluator) decide(ctx context.Context, p evalParams) ([]evalResult, error) {
	switch {
	case p.network != "":
		return e.network(ctx, p)
	case p.path != "":
		return e.guarded(ctx, p, engine.Filesystem, fmt.Sprintf("%s %s", p.op, p.path), func(ctx context.Context) error {
			path, err := filepath.Abs(p.path)
			if err != nil {
				return err
			}
			files := guard.NewFiles(e, e, &guard.FilesOptions{Roots: e.chk.pol.Roots()})
			return files.Check(ctx, path, plugin.Op(p.op))
		})
	case p.exec:
		return e.guarded(ctx, p, engine.Commands, "exec "+strings.Join(p.argv, " "), func(ctx context.Context) error {
			dir := p.cwd
			if dir == "" {
				var err error
				if dir, err = os.Getwd(); err != nil {
					return err
				}
			}
			pol := e.chk.pol
			files := guard.NewFiles(e, e, &guard.FilesOptions{Roots: pol.Roots()})
			cmds := guard.NewCommands(e, e, files, &guard.CommandsOptions{
				Allowed:    pol.Commands.Allowed,
				Blocked:    pol.Commands.Blocked,
				Unconfined: pol.Commands.Unconfined,
				ConnectTCP: pol.ChildPorts(),
				Limits:     sandbox.Limits{CPU: pol.Timeout()},
				Protected:  protectedPaths(pol),
			})
			_, err := cmds.Check(ctx, p.argv, dir)
			return err
		})
	case p.input != "":
		return e.rawInput(ctx, p)
	}
	return e.toolCall(ctx, p)
}

// toolCall decides a tools/call with the input the pipeline builds.
func (e *evaluator) toolCall(ctx context.Context, p evalParams) ([]evalResult, error) {
	args, err := jsonschema.Decode(strings.NewReader(p.args))
	if err != nil {
		return nil, fmt.Errorf("--args: %w", err)
	}
	if _, ok := args.(map[string]any); !ok {
		return nil, fmt.Errorf("--args: want a JSON object, got %s", strings.TrimSpace(p.args))
	}
	v, err := ast.InterfaceToValue(args)
	if err != nil {
		return nil, fmt.Errorf("--args: %w", err)
	}
	in := engine.ToolInput{
		Tool:            p.tool,
		Registered:      slices.Contains(e.chk.tools, p.tool),
		Arguments:       v,
		Client:          engine.Client{Name: p.client, Version: p.clientVer},
		ProtocolVersion: p.protocol,
		RequestID:       "policy-eval",
	}
	r := e.one(ctx, engine.Tools, "tool "+p.tool, in.Value())
	if !in.Registered {
		r.what += " (not a tool of this build)"
	}
	return []evalResult{r}, nil
}

// network decides the lookup of a name and, with --ip, the dial to the
// address it resolved to; an IP literal is decided as the dial.
func (e *evaluator) network(ctx context.Context, p evalParams) ([]evalResult, error) {
	host, portStr, err := net.SplitHostPort(p.network)
	if err != nil {
		return nil, fmt.Errorf("--network %q: want host:port ([v6]:port for IPv6)", p.network)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--network %q: bad port %q", p.network, portStr)
	}
	host = guard.NormalizeHost(host)
	dial := func(name string, a netip.Addr) evalResult {
		in := engine.NetworkInput{Phase: "dial", Host: name, IP: a.Unmap().String(), Port: port, Network: "tcp", Tool: p.tool}
		if emb, ok := guard.EmbeddedIPv4(a.Unmap()); ok {
			in.EmbeddedIPv4 = emb.String()
		}
		return e.one(ctx, engine.Network, fmt.Sprintf("connect %s", net.JoinHostPort(a.Unmap().String(), portStr)), in.Value())
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return []evalResult{{what: "connect " + p.network, point: engine.Network, reasons: []string{"zoned IPv6 addresses are never allowed"}}}, nil
		}
		return []evalResult{dial("", a)}, nil
	}
	in := engine.NetworkInput{Phase: "resolve", Host: host, Port: port, Network: "tcp", Tool: p.tool}
	out := []evalResult{e.one(ctx, engine.Network, "resolve "+host, in.Value())}
	if p.ip != "" {
		a, err := netip.ParseAddr(p.ip)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("--ip %q is not an IP address", p.ip)
		}
		r := dial(host, a)
		r.what = fmt.Sprintf("connect %s (%s)", net.JoinHostPort(host, portStr), a)
		out = append(out, r)
	}
	return out, nil
}

// guarded runs a guard's check and reports what it asked the policy, or
// its refusal when it refused before asking.
func (e *evaluator) guarded(ctx context.Context, p evalParams, point engine.Point, what string, check func(context.Context) error) ([]evalResult, error) {
	ctx = guard.WithCall(ctx, guard.Call{Tool: p.tool, RequestID: "policy-eval"})
	err := check(ctx)
	var denied *plugin.DeniedError
	if err != nil && !errors.As(err, &denied) {
		return nil, err
	}
	var out []evalResult
	for _, a := range e.asked {
		r := evalResult{what: what, point: a.point, input: a.input, allow: a.d.Allow, reasons: a.d.Reasons}
		if a.point != point {
			// A question, not a request: whether a tool could do it.
			r.aside, r.what = true, "could a tool "+describeInput(a.input)+"?"
		}
		out = append(out, r)
	}
	verdict := slices.DeleteFunc(slices.Clone(out), func(r evalResult) bool { return r.aside })
	if denied != nil && (len(verdict) == 0 || verdict[len(verdict)-1].allow) {
		// Refused without a policy deny: before asking, or after (the
		// real file behind a path, say).
		out = append(out, evalResult{what: what, point: point, reasons: denied.Reasons})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: the guard decided nothing", what)
	}
	return out, nil
}

// rawInput decides an input document read from a file.
func (e *evaluator) rawInput(ctx context.Context, p evalParams) ([]evalResult, error) {
	point := engine.Point(p.point)
	if !slices.Contains(engine.Points, point) {
		return nil, fmt.Errorf("--point %q: want one of tools, network, filesystem, commands", p.point)
	}
	var src []byte
	var err error
	if p.input == "-" {
		src, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	} else {
		src, err = os.ReadFile(p.input)
	}
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("--input %s: %w", p.input, err)
	}
	if _, ok := v.(ast.Object); !ok {
		return nil, fmt.Errorf("--input %s: want a JSON object", p.input)
	}
	return []evalResult{e.one(ctx, point, "input "+p.input, v)}, nil
}

func (e *evaluator) one(ctx context.Context, point engine.Point, what string, input ast.Value) evalResult {
	d, err := e.eng.Decide(ctx, point, input)
	r := evalResult{what: what, point: point, input: input, allow: d.Allow && err == nil, reasons: d.Reasons}
	if err != nil {
		r.reasons = append(r.reasons, err.Error())
	}
	return r
}

// describeInput names what a guard asked: "write /usr/bin/git".
func describeInput(in ast.Value) string {
	obj, ok := in.(ast.Object)
	if !ok {
		return in.String()
	}
	var parts []string
	for _, k := range []string{"operation", "path", "phase", "host", "ip", "port"} {
		if v := obj.Get(ast.StringTerm(k)); v != nil {
			if s, ok := v.Value.(ast.String); ok {
				if s != "" {
					parts = append(parts, string(s))
				}
				continue
			}
			parts = append(parts, v.String())
		}
	}
	return strings.Join(parts, " ")
}
