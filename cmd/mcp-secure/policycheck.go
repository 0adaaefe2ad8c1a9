package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/mcp-secure/mcp-secure/server/bundle"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// checked is a policy that passed every start-up check: the same checks
// for `serve` and `policy check`, so a policy that checks clean starts.
type checked struct {
	pol      *policy.Policy
	cfg      engine.Config
	eng      *engine.Engine
	dry      *engine.Engine // the dry_run section's; nil without one
	tools    []string       // names of the tools the plugins of this build serve
	warnings []string
	// snapshot is the bundle the policy came in, activated once the
	// policy is in force (bundle.Source.Activated); nil for a file.
	snapshot *bundle.Snapshot
	// dryEnvRefs are the variables the dry_run section's policy file
	// takes with ${VAR} (see envRefs).
	dryEnvRefs []string
}

// checkPolicy loads the policy, builds the engine with the user's modules
// (which may only tighten), and builds every plugin once with its
// settings on a host whose doors are shut, to refuse unknown plugin names,
// unknown setting keys and bad values with the file and line of the key.
// Every error is a usage error (exit 2).
func checkPolicy(ctx context.Context, file string) (*checked, error) {
	chk, err := startPolicy(ctx, file)
	if err != nil {
		return nil, err
	}
	if err := chk.wait(ctx); err != nil {
		return nil, err
	}
	return chk, nil
}

// startPolicy is checkPolicy with the engine's build still under way (see
// engine.Start): every other check is done, and chk.wait returns the
// build's outcome. Serve uses it to do the rest of its start meanwhile.
func startPolicy(ctx context.Context, file string) (*checked, error) {
	pol, err := loadPolicy(file)
	if err != nil {
		return nil, &exitErr{code: exitUsage, err: err}
	}
	user, err := readModules(pol)
	if err != nil {
		return nil, &exitErr{code: exitUsage, err: err}
	}
	return startLoaded(ctx, pol, user)
}

// checkLoaded is checkPolicy on a loaded policy and its user modules (by
// file name), wherever they came from: a policy file or a bundle.
func checkLoaded(ctx context.Context, pol *policy.Policy, user map[string]string) (*checked, error) {
	chk, err := startLoaded(ctx, pol, user)
	if err != nil {
		return nil, err
	}
	if err := chk.wait(ctx); err != nil {
		return nil, err
	}
	return chk, nil
}

// wait waits for the engine's build and returns its error as checkPolicy
// does.
func (chk *checked) wait(ctx context.Context) error {
	if err := chk.eng.Wait(ctx); err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("policy %s: %w", chk.pol.Source(), err)}
	}
	return nil
}

// startLoaded is checkLoaded with the engine's build still under way.
func startLoaded(ctx context.Context, pol *policy.Policy, user map[string]string) (*checked, error) {
	cfg, err := engineConfigFor(pol, user)
	if err != nil {
		return nil, &exitErr{code: exitUsage, err: err}
	}
	chk := &checked{pol: pol, cfg: cfg, eng: engine.Start(ctx, cfg)}
	// The checks below run while the engine builds; its error, if any,
	// is the one reported, as when the build came first.
	dry, dryEnvRefs, dryWarning, err := buildDryRun(ctx, pol, cfg)
	if err != nil {
		if werr := chk.wait(ctx); werr != nil {
			return nil, werr
		}
		return nil, &exitErr{code: exitUsage, err: fmt.Errorf("policy %s: %w", pol.Source(), err)}
	}
	tools, err := checkPlugins(pol)
	if err != nil {
		if werr := chk.wait(ctx); werr != nil {
			return nil, werr
		}
		return nil, &exitErr{code: exitUsage, err: err}
	}
	chk.dryEnvRefs = dryEnvRefs
	own := chk.envRefs()
	warnings := append(pol.Warnings(tools), externalWarnings(pol, own)...)
	warnings = append(warnings, upstreamWarnings(pol, own)...)
	if _, w := serverFiles(pol); w != "" {
		warnings = append(warnings, w)
	}
	if dryWarning != "" {
		warnings = append(warnings, dryWarning)
	}
	chk.dry, chk.tools, chk.warnings = dry, tools, warnings
	return chk, nil
}

// envRefs are the variables the policy and its dry-run policy file take
// with ${VAR}, sorted: the server's own (see ownEnv). A dry-run policy is
// never enforced, but its variables are credentials all the same (a
// candidate copied from the policy in force takes the same tokens).
func (chk *checked) envRefs() []string {
	return slices.Compact(slices.Sorted(slices.Values(append(chk.pol.EnvRefs(), chk.dryEnvRefs...))))
}

// checkPlugins builds each registered plugin with the policy's settings
// and returns the names of all their tools.
func checkPlugins(pol *policy.Policy) ([]string, error) {
	return checkPluginsIn(pol, pluginOrder(), plugin.Lookup)
}

// checkPluginsIn is checkPlugins over the given registry.
func checkPluginsIn(pol *policy.Policy, registered []string, lookup func(string) (plugin.Factory, bool)) ([]string, error) {
	for _, name := range slices.Sorted(maps.Keys(pol.Plugins)) {
		if !slices.Contains(registered, name) {
			msg := fmt.Sprintf("unknown plugin %q (this build has %s)", name, strings.Join(registered, ", "))
			if s := closest(name, registered); s != "" {
				msg = fmt.Sprintf("unknown plugin %q; did you mean %s? (this build has %s)", name, s, strings.Join(registered, ", "))
			}
			return nil, pol.Errorf("plugins."+name, "%s", msg)
		}
	}
	tmp, err := os.MkdirTemp("", "mcp-secure-check-")
	if err != nil {
		return nil, fmt.Errorf("checking plugins: %w", err)
	}
	defer os.RemoveAll(tmp)
	var tools []string
	for _, name := range registered {
		f, ok := lookup(name)
		if !ok {
			return nil, fmt.Errorf("plugin %q is not in this build", name)
		}
		h := &probeHost{name: name, settings: pluginSettings(pol), read: map[string]bool{}, dataDir: tmp}
		pl, err := f(h)
		if err != nil {
			return nil, locatePluginError(pol, name, err)
		}
		known := maps.Clone(h.read)
		if c, ok := pl.(plugin.Configurable); ok {
			for _, k := range c.SettingKeys() {
				known[k] = true
			}
		}
		for _, key := range slices.Sorted(maps.Keys(pol.Plugins[name])) {
			if known[key] {
				continue
			}
			keys := slices.Sorted(maps.Keys(known))
			msg := fmt.Sprintf("plugin %s has no setting %q", name, key)
			if s := closest(key, keys); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			if len(keys) == 0 {
				msg += " (it takes no settings)"
			} else {
				msg += fmt.Sprintf(" (known: %s)", strings.Join(keys, ", "))
			}
			return nil, pol.Errorf("plugins."+name+"."+key, "%s", msg)
		}
		for _, t := range pl.Tools() {
			tools = append(tools, t.Name)
		}
	}
	slices.Sort(tools)
	return tools, nil
}

// settingKey finds plugins.<name>.<key> in an error message.
var settingKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`plugins\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_.-]+?):\s*`) })

// locatePluginError points a plugin factory's error at the setting it
// names: a [plugin.SettingError], else a "plugins.<name>.<key>: " the
// message starts a clause with, else the plugin's section.
func locatePluginError(pol *policy.Policy, name string, err error) error {
	var se *plugin.SettingError
	if errors.As(err, &se) {
		return pol.Errorf("plugins."+se.Plugin+"."+se.Key, "%v", se.Err)
	}
	msg := err.Error()
	if m := settingKey().FindStringSubmatchIndex(msg); m != nil {
		p, k := msg[m[2]:m[3]], msg[m[4]:m[5]]
		if _, ok := pol.Plugins[p][k]; ok {
			return pol.Errorf("plugins."+p+"."+k, "%s", msg[:m[0]]+msg[m[1]:])
		}
	}
	return pol.Errorf("plugins."+name, "plugin %s: %v", name, err)
}

// closest is the candidate within two edits of s, if any.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev[j-2]+1) // transposition, approximately
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// errChecking is what the probe host's doors answer.
var errChecking = errors.New("not available while checking the policy")

// probeHost is the host plugins are built on while the policy is checked:
// it hands out settings and records which keys a factory reads; its doors
// refuse everything. The embedded interfaces keep it a Host as the
// contract grows; a method not overridden here is never called by a
// factory that follows the contract.
type probeHost struct {
	plugin.Host
	name     string // the plugin being built
	settings map[string]map[string]string
	read     map[string]bool
	dataDir  string
}

func (h *probeHost) Logger() *slog.Logger      { return slog.New(slog.DiscardHandler) }
func (h *probeHost) Catalog() plugin.Catalog   { return probeCatalog{} }
func (h *probeHost) Network() plugin.Network   { return plugin.Closed{Err: errChecking} }
func (h *probeHost) Files() plugin.Files       { return plugin.Closed{Err: errChecking} }
func (h *probeHost) Commands() plugin.Commands { return plugin.Closed{Err: errChecking} }
func (h *probeHost) Setting(p, key string) string {
	if p == h.name {
		h.read[key] = true
	}
	return h.settings[p][key]
}

func (h *probeHost) DataDir(name string) (string, error) {
	dir := filepath.Join(h.dataDir, filepath.Base(name))
	return dir, os.MkdirAll(dir, 0o700)
}

type probeCatalog struct{ plugin.Catalog }

func (probeCatalog) Entries() []plugin.Entry { return nil }
func (probeCatalog) Permitted(context.Context, *plugin.Call, string) (bool, []string) {
	return false, []string{errChecking.Error()}
}

// revision is the bundle's revision, when the policy came in one: the
// one its engine's decisions name (checkSnapshot sets it on the policy).
func (c *checked) revision() string {
	rev, _ := c.pol.Revision()
	return rev
}
