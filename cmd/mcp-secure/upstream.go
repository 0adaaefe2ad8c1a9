package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/mcp-secure/mcp-secure/plugins/upstream"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/guard"
	"github.com/mcp-secure/mcp-secure/server/pins"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// kindToolDefinition audits an upstream tool's definition: pinned,
// changed, approved.
const kindToolDefinition = "tool_definition"

// upstreamReadOnly are what a server commonly needs beyond the system
// paths, none of it secret: TLS configuration and CA certificates (not
// /etc/ssl/private) and the resolver's files.
var upstreamReadOnly = []string{"/etc/ssl/openssl.cnf", "/etc/ssl/certs", "/etc/ca-certificates", "/etc/hosts", "/etc/resolv.conf"}

// startUpstreams starts the servers of the policy's servers: section
// through the launcher door. One that cannot start is logged and left
// out: the others, and the server's own tools, still serve. own are the
// server's credential variables besides OTEL_* and MCP_SECURE_*.
func startUpstreams(ctx context.Context, pol *policy.Policy, door plugin.Launcher, own []string, alog *audit.Logger, log *slog.Logger) []plugin.Plugin {
	if len(pol.Servers) == 0 {
		return nil
	}
	store, err := pins.Open(pins.PathFor(pol.Audit.LogFile))
	if err != nil {
		log.Error("upstream servers not started: the tool pins cannot be read", "err", err)
		return nil
	}
	store.OnChange(plugin.DefinitionChanging)
	pa := &pinAudit{store: store, audit: alog, log: log}
	names := pol.ServerNames()
	out := make([]plugin.Plugin, len(names))
	// The servers start side by side, each waited for at most its first
	// wait (upstream.Config.FirstWait): one slow or hung server holds up
	// the server's own start by that much, not by its start's deadline.
	var starting sync.WaitGroup
	// What symlinks in a server's code lead to is kept from tools, so the
	// server is given it to read.
	_, codeReads, _ := serverCode(pol)
	for i, name := range names {
		s := pol.Servers[name]
		spec, err := upstreamSpec(name, s, os.LookupEnv, own)
		var desc string
		if err == nil {
			spec.ReadOnly = append(spec.ReadOnly, codeReads[name]...)
			desc, err = door.LaunchConfinement(spec)
		}
		if err != nil {
			log.Error("upstream server not started", "upstream", name, "err", err)
			if aerr := alog.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: audit.KindUpstream, Result: audit.ResultDeny,
				Reasons: []string{"not started: " + err.Error()}, Input: map[string]any{"server": name}}); aerr != nil {
				log.Error("the audit record could not be written", "upstream", name, "err", aerr)
			}
			out[i] = &notStarted{name: name, prefix: s.ToolPrefix(name), why: err}
			continue
		}
		starting.Go(func() {
			u, err := upstream.New(ctx, upstream.Config{
				Name: name, Prefix: s.ToolPrefix(name), Version: version,
				Launcher: upstream.Door{Launcher: door, Spec: spec}, Pins: pa, Logger: log,
				StartFailed: func(err error) { auditStartFailed(ctx, alog, log, name, err) },
			})
			switch {
			case errors.Is(err, upstream.ErrSlowStart):
				log.Warn("upstream server still starting; its tools are offered once it is up", "upstream", name, "err", err, "sandbox", desc)
				out[i] = u
			case errors.Is(err, upstream.ErrNotStarted):
				// Retried with the supervisor's backoff: its tools are
				// offered, and clients told, once it is up.
				log.Error("upstream server not started; it is being retried", "upstream", name, "err", err, "sandbox", desc)
				out[i] = u
			case err != nil:
				log.Error("upstream server not started", "upstream", name, "err", err)
				out[i] = &notStarted{name: name, prefix: s.ToolPrefix(name), why: err}
			default:
				log.Info("upstream server started", "upstream", name, "tools", len(u.Tools()), "sandbox", desc)
				out[i] = u
			}
		})
	}
	starting.Wait()
	return out
}

// auditStartFailed records that a start of upstream server name failed
// after its process was launched (the launch has its own record): kind
// upstream, result deny, with why.
func auditStartFailed(ctx context.Context, alog *audit.Logger, log *slog.Logger, name string, why error) {
	if err := alog.Log(context.WithoutCancel(ctx), audit.Record{DecisionID: audit.NewID(), Kind: audit.KindUpstream, Result: audit.ResultDeny,
		Reasons: []string{"start failed: " + why.Error()}, Input: map[string]any{"server": name}}); err != nil {
		log.Error("the audit record could not be written", "upstream", name, "err", err)
	}
}

// notStarted stands for an upstream server that will not start while
// the server runs (its policy entry cannot be started as it is): it
// serves no tool, and a call to a tool under its prefix is told why
// instead of only "not registered".
type notStarted struct {
	name, prefix string
	why          error
}

func (n *notStarted) Info() plugin.Info {
	return plugin.Info{Name: "upstream." + n.name, Version: "1.0.0", Description: "the upstream MCP server " + n.name + ", not started"}
}

func (n *notStarted) Tools() []plugin.Tool { return nil }

func (n *notStarted) Pending(tool string) string {
	if !strings.HasPrefix(tool, n.prefix) {
		return ""
	}
	return fmt.Sprintf("upstream server %q was not started: %v (fix it and restart mcp-secure)", n.name, n.why)
}

// upstreamWarnings are the servers that cannot start because of their
// env (policy check reports them; the server leaves them out), own (the
// variables the policy and its dry-run policy take, checked.envRefs)
// among the server's own, and those whose ${VAR} is not set in this
// environment (the serving environment may set it).
func upstreamWarnings(pol *policy.Policy, own []string) []string {
	var out []string
	anything := func(string) (string, bool) { return "", true }
	for _, name := range pol.ServerNames() {
		if _, err := upstreamSpec(name, pol.Servers[name], anything, own); err != nil {
			out = append(out, fmt.Sprintf("upstream server %s will not start: %v", name, err))
		} else if _, err := upstreamSpec(name, pol.Servers[name], os.LookupEnv, own); err != nil {
			out = append(out, fmt.Sprintf("upstream server %s will not start in this environment: %v", name, err))
		} else if _, err := guard.Resolve(pol.Servers[name].Command); err != nil {
			out = append(out, fmt.Sprintf("upstream server %s will not start in this environment: servers.%s.command: %v", name, name, err))
		}
	}
	return out
}

var envRef = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`) })

// upstreamSpec is how servers.<name> starts through the launcher door:
// its command and args, long-lived, running in /; its env with each
// ${VAR} taken from lookup now; sandbox.read and the TLS and resolver
// files read-only; the policy's paths and ports narrowed by
// sandbox.paths and sandbox.ports. A variable the server may not hand a
// child ([plugin.EnvRefusal]), or a ${VAR} naming one of the server's
// own, is an error naming the key.
func upstreamSpec(name string, s policy.Server, lookup func(string) (string, bool), own []string) (*plugin.LaunchSpec, error) {
	spec := &plugin.LaunchSpec{
		Server: name, Path: s.Command, Args: append([]string{s.Command}, s.Args...),
		Env: map[string]string{}, LongLived: true,
		ReadOnly: append(slices.Clone(upstreamReadOnly), s.Sandbox.Read...),
		Paths:    s.Sandbox.Paths, Ports: s.Sandbox.Ports,
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if why := plugin.EnvRefusal(k, own); why != "" {
			return nil, fmt.Errorf("servers.%s.env.%s is refused: %s", name, k, why)
		}
		var bad error
		v := envRef().ReplaceAllStringFunc(s.Env[k], func(ref string) string {
			ref = ref[2 : len(ref)-1]
			val, ok := lookup(ref)
			switch {
			case bad != nil:
			case plugin.IsOwnEnv(ref, own):
				bad = fmt.Errorf("servers.%s.env.%s takes ${%s}, the server's own variable (credentials or configuration): no child is given its value", name, k, ref)
			case !ok:
				bad = fmt.Errorf("servers.%s.env.%s takes ${%s}, which is not set", name, k, ref)
			}
			if !slices.Contains(spec.EnvFrom, ref) {
				spec.EnvFrom = append(spec.EnvFrom, ref)
			}
			return val
		})
		if bad != nil {
			return nil, bad
		}
		spec.Env[k] = v
	}
	return spec, nil
}

// pinAudit keeps the pins and audits what changes them. A changed or
// pending definition is recorded when its hash differs from the one last
// seen for that tool, not at each listing: an upstream that relists in a
// loop cannot flood the audit log.
type pinAudit struct {
	store *pins.Store
	audit *audit.Logger
	log   *slog.Logger

	// mu guards last; it is taken under the store's lock (record runs
	// there), so nothing holding it may call the store.
	mu   sync.Mutex
	last map[string]string // tool -> hash of the changed or pending definition last recorded
	// trusted holds, per server, whether its initial listing is trusted
	// on first use: decided once per run, before the server is marked
	// listed, so every tool of that listing is judged alike. Guarded by
	// tmu, which is held while the store is asked (never under its lock).
	tmu     sync.Mutex
	trusted map[string]bool
}

var _ upstream.Pins = (*pinAudit)(nil)

// Observe pins a tool never seen at the initial listing of a server
// never listed before (trust on first use); one first seen later, or at
// a later start of the server, is left pending, denied until approved,
// so an upstream cannot add or rename a tool past the pins. A listing is
// one look at the pins and one batch of audit records, written before
// the pins file: no pin is kept without its record.
func (p *pinAudit) Observe(ctx context.Context, server string, ds []upstream.Definition, initial bool) ([]string, []error) {
	hashes, errs := make([]string, len(ds)), make([]error, len(ds))
	var obs []pins.Observation
	var at []int // the index in ds of each observation
	for i, d := range ds {
		def := pins.Definition{Name: d.Name, Description: d.Description, InputSchema: d.InputSchema, OutputSchema: d.OutputSchema,
			Title: d.Title, Annotations: d.Annotations, Server: server}
		h, err := pins.Hash(def)
		if err != nil {
			errs[i] = err
			continue
		}
		// The tool is offered as prefix+name.
		trust, err := p.trusts(server, strings.TrimSuffix(d.Tool, d.Name))
		if err != nil {
			errs[i] = err
			continue
		}
		if d.Tool != d.Name {
			def.Name, def.OwnName = d.Tool, d.Name
		}
		hashes[i] = h
		obs = append(obs, pins.Observation{Def: def, Hash: h, Trust: initial && trust})
		at = append(at, i)
	}
	if len(obs) == 0 {
		return hashes, errs
	}
	res, err := p.store.ObserveAll(server, obs, func(res []pins.Observed) error {
		return p.record(ctx, server, ds, hashes, at, res)
	})
	for j, i := range at {
		switch {
		case err != nil:
			errs[i] = err
		case errors.Is(res[j].Err, pins.ErrTooManyPending):
			errs[i] = fmt.Errorf("%w: %w", upstream.ErrLeftOut, res[j].Err)
		default:
			errs[i] = res[j].Err
		}
	}
	return hashes, errs
}

// record writes, in one batch, the audit records of what a listing's
// observations found (res; the definition of res[j] is ds[at[j]], of hash
// hashes[at[j]]): a pin, a changed definition, a pending tool.
func (p *pinAudit) record(ctx context.Context, server string, ds []upstream.Definition, hashes []string, at []int, res []pins.Observed) error {
	var rs []audit.Record
	var noted []string // tools whose hash fresh noted as recorded
	for j, r := range res {
		d, h := ds[at[j]], hashes[at[j]]
		if r.Err != nil || !p.fresh(d.Tool, h, r.Outcome) {
			continue
		}
		in := map[string]any{"server": server, "upstream_tool": d.Name, "hash": h}
		switch r.Outcome {
		case pins.Pinned:
			rs = append(rs, audit.Record{DecisionID: audit.NewID(), Kind: kindToolDefinition, Tool: d.Tool,
				Result: audit.ResultAllow, Reasons: []string{"first seen: definition pinned"}, Input: in})
		case pins.Changed:
			in["pinned"] = r.Pinned
			p.log.Warn("upstream tool definition changed since it was pinned; calls are denied until `mcp-secure tools approve` re-pins it", "tool", d.Tool)
			rs = append(rs, audit.Record{DecisionID: audit.NewID(), Kind: kindToolDefinition, Tool: d.Tool,
				Result: audit.ResultDeny, Reasons: []string{"definition changed since it was pinned"}, Input: in})
			noted = append(noted, d.Tool)
		case pins.Pending:
			p.log.Warn("upstream tool not seen before, after the first listing of its server; calls are denied until `mcp-secure tools approve` pins it", "tool", d.Tool)
			rs = append(rs, audit.Record{DecisionID: audit.NewID(), Kind: kindToolDefinition, Tool: d.Tool,
				Result: audit.ResultDeny, Reasons: []string{"new tool: approve to pin"}, Input: in})
			noted = append(noted, d.Tool)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	if err := p.audit.LogBatch(ctx, rs); err != nil {
		// Not recorded: the next listing records them.
		p.mu.Lock()
		for _, tool := range noted {
			delete(p.last, tool)
		}
		p.mu.Unlock()
		return fmt.Errorf("the audit record could not be written: %w", err)
	}
	return nil
}

// trusts reports whether server's initial listing in this run is trusted
// on first use: the server, its tools offered under prefix, was never
// listed before. It is marked listed now.
func (p *pinAudit) trusts(server, prefix string) (bool, error) {
	p.tmu.Lock()
	defer p.tmu.Unlock()
	if t, ok := p.trusted[server]; ok {
		return t, nil
	}
	seen, err := p.store.ServerSeen(server, prefix)
	if err != nil {
		return false, err
	}
	if err := p.store.MarkServer(server); err != nil {
		return false, err
	}
	if p.trusted == nil {
		p.trusted = map[string]bool{}
	}
	p.trusted[server] = !seen
	return !seen, nil
}

// fresh reports whether a definition observed with outcome out is to be
// recorded: a changed or pending one only when h is not the hash last
// recorded for tool.
func (p *pinAudit) fresh(tool, h string, out pins.Outcome) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if out != pins.Changed && out != pins.Pending {
		delete(p.last, tool)
		return true
	}
	if p.last[tool] == h {
		return false
	}
	if p.last == nil {
		p.last = map[string]string{}
	}
	p.last[tool] = h
	return true
}

func (p *pinAudit) State(tool, hash string) plugin.DefinitionState {
	pinned, err := p.store.Pinned(tool)
	if err != nil {
		return plugin.DefinitionState{Changed: true, Hash: hash}
	}
	// A tool without a pin is pending approval (first seen after the
	// initial listing), or its pin was removed: deny until approved.
	return plugin.DefinitionState{Changed: pinned != hash, Hash: hash, Pinned: pinned}
}
