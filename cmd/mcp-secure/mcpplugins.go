package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/mcp-secure/mcp-secure/plugins/external"
	"github.com/mcp-secure/mcp-secure/plugins/upstream"
	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/pins"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// Plugin directories (plugins.external) whose manifest is of type mcp
// name an MCP server: it is served like an entry of the policy's
// servers: section (plugins/upstream: the same tool pins, restarts and
// notifications), its process started through the command door's
// plugin launcher like an external plugin's (trusted because the
// operator listed the directory; confined to the policy's paths and
// ports, narrowed by the manifest's sandbox, with the plugin directory
// readable and executable).

// The external plugin leaves manifests of type mcp to this file.
func init() { external.ClaimType(external.TypeMCP) }

// mcpPlugin is a type mcp manifest ready to start.
type mcpPlugin struct {
	m      *external.Manifest
	prefix string
	spec   *plugin.LaunchSpec
	desc   string // how it is confined
}

// mcpLeftOut is a type mcp manifest left out, and why (naming it); its
// Error is the reason.
type mcpLeftOut struct {
	m   *external.Manifest
	err error
}

func (l mcpLeftOut) Error() string { return l.err.Error() }

// mcpPlugins loads the type mcp manifests of the plugin directories.
// Each problem names the manifest; a directory of another type, or
// whose manifest does not load (the external plugin reports those), is
// skipped.
func mcpPlugins(pol *policy.Policy, launcher plugin.Launcher) (out []mcpPlugin, left []mcpLeftOut) {
	prefixes := map[string]string{} // prefix -> who uses it
	for _, name := range pol.ServerNames() {
		prefixes[pol.Servers[name].ToolPrefix(name)] = "servers." + name
	}
	names := map[string]string{}
	for _, dir := range pol.External.Dirs {
		m, err := external.Load(dir)
		if err != nil || m.Type != external.TypeMCP {
			continue
		}
		p, err := newMCPPlugin(pol, m, launcher, prefixes, names)
		if err != nil {
			left = append(left, mcpLeftOut{m: m, err: err})
			continue
		}
		prefixes[p.prefix] = m.File
		names[m.Name] = m.File
		out = append(out, p)
	}
	return out, left
}

// newMCPPlugin checks m against the servers and the plugins before it
// and against the kernel's confinement.
func newMCPPlugin(pol *policy.Policy, m *external.Manifest, launcher plugin.Launcher, prefixes, names map[string]string) (mcpPlugin, error) {
	bad := func(format string, args ...any) (mcpPlugin, error) {
		return mcpPlugin{}, &external.ManifestError{File: m.File, Msg: fmt.Sprintf(format, args...)}
	}
	if _, dup := pol.Servers[m.Name]; dup {
		return bad("name %q is also the name of servers.%s", m.Name, m.Name)
	}
	if other, dup := names[m.Name]; dup {
		return bad("name %q is also the name of the plugin of %s", m.Name, other)
	}
	prefix := m.Prefix()
	if other, clash := policy.PrefixClash(prefix, prefixes); clash {
		return bad("tool prefix %q overlaps the prefix of %s (one starts the other: a tool name could be either's)", prefix, other)
	}
	spec := m.LaunchSpec(os.LookupEnv)
	spec.Server, spec.LongLived = m.Name, true // every start audited, kind upstream
	var desc string
	if launcher != nil { // nil: only the manifests are checked (policy check)
		var err error
		if desc, err = launcher.LaunchConfinement(spec); err != nil {
			return bad("%v", err)
		}
	}
	return mcpPlugin{m: m, prefix: prefix, spec: spec, desc: desc}, nil
}

// mcpWarnings are the problems of type mcp manifests that serve would
// report (policy check).
func mcpWarnings(pol *policy.Policy) []string {
	_, left := mcpPlugins(pol, nil)
	out := make([]string, 0, len(left))
	for _, l := range left {
		out = append(out, "MCP plugin left out: "+l.err.Error())
	}
	return out
}

// startMCPPlugins starts the MCP servers of the type mcp manifests. A
// bad manifest is logged, naming its file, audited (kind upstream,
// result deny) and left out; with plugins.strict it is an error. A
// server whose first start fails is retried, as for servers:.
func startMCPPlugins(ctx context.Context, pol *policy.Policy, launcher plugin.Launcher, alog *audit.Logger, log *slog.Logger) ([]plugin.Plugin, error) {
	if launcher == nil {
		return nil, errors.New("MCP plugins: this server has no plugin launcher")
	}
	ps, left := mcpPlugins(pol, launcher)
	var errs []error
	for _, l := range left {
		errs = append(errs, l.err)
		if aerr := alog.Log(ctx, audit.Record{DecisionID: audit.NewID(), Kind: audit.KindUpstream, Result: audit.ResultDeny,
			Reasons: []string{"not started: " + l.err.Error()}, Input: map[string]any{"server": l.m.Name, "manifest": l.m.File}}); aerr != nil {
			log.Error("the audit record could not be written", "upstream", l.m.Name, "err", aerr)
		}
	}
	if len(errs) > 0 && pol.External.Strict {
		return nil, fmt.Errorf("plugins.external: %w (plugins.strict is set)", errors.Join(errs...))
	}
	for _, err := range errs {
		log.Error("MCP plugin left out", "err", err)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	store, err := pins.Open(pins.PathFor(pol.Audit.LogFile))
	if err != nil {
		err = fmt.Errorf("the tool pins cannot be read: %w", err)
		if pol.External.Strict {
			return nil, fmt.Errorf("plugins.external: %w (plugins.strict is set)", err)
		}
		log.Error("MCP plugins not started", "err", err)
		return nil, nil
	}
	store.OnChange(plugin.DefinitionChanging)
	pa := &pinAudit{store: store, audit: alog, log: log}
	// Side by side, as the servers: section's (startUpstreams).
	started := make([]plugin.Plugin, len(ps))
	var starting sync.WaitGroup
	for i, p := range ps {
		name := p.m.Name
		starting.Go(func() {
			u, err := upstream.New(ctx, upstream.Config{
				Name: name, Prefix: p.prefix, Version: version,
				Launcher: manifestLauncher{m: p.m, door: upstream.Door{Launcher: launcher, Spec: p.spec}, audit: alog},
				Pins:     pa, Logger: log,
				StartFailed: func(err error) { auditStartFailed(ctx, alog, log, name, err) },
			})
			switch {
			case errors.Is(err, upstream.ErrSlowStart):
				log.Warn("MCP plugin still starting; its tools are offered once it is up", "upstream", name, "manifest", p.m.File, "err", err, "sandbox", p.desc)
				started[i] = u
			case errors.Is(err, upstream.ErrNotStarted):
				log.Error("MCP plugin not started; it is being retried", "upstream", name, "manifest", p.m.File, "err", err, "sandbox", p.desc)
				started[i] = u
			case err != nil:
				log.Error("MCP plugin not started", "upstream", name, "manifest", p.m.File, "err", err)
			default:
				log.Info("MCP plugin started", "upstream", name, "manifest", p.m.File, "version", p.m.Version,
					"tools", len(u.Tools()), "sha256_pinned", p.m.SHA256 != "", "sandbox", p.desc)
				started[i] = u
			}
		})
	}
	starting.Wait()
	var out []plugin.Plugin
	for _, u := range started {
		if u != nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// manifestLauncher starts a type mcp plugin's server through the
// launcher door (which audits each start, kind upstream), its
// executable checked against the manifest's sha256 first.
type manifestLauncher struct {
	m     *external.Manifest
	door  upstream.Door
	audit *audit.Logger
}

var _ upstream.Launcher = manifestLauncher{}

// Launch implements upstream.Launcher.
func (l manifestLauncher) Launch(ctx context.Context) (plugin.Process, error) {
	if err := l.m.CheckSHA256(); err != nil {
		if aerr := l.audit.Log(context.WithoutCancel(ctx), audit.Record{DecisionID: audit.NewID(), Kind: audit.KindUpstream, Result: audit.ResultDeny,
			Reasons: []string{"not started: " + err.Error()}, Input: map[string]any{"server": l.m.Name, "manifest": l.m.File}}); aerr != nil {
			return nil, fmt.Errorf("%w (and the audit record could not be written: %v)", err, aerr)
		}
		return nil, err
	}
	return l.door.Launch(ctx)
}
