package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// Name is the plugin's registration name.
const Name = "external"

// The settings the server hands this plugin (from plugins.external and
// plugins.strict of the policy, not from plugins.external.<key>).
const (
	// DirsSetting holds the plugin directories as a JSON list of
	// absolute paths.
	DirsSetting = "dirs"
	// StrictSetting is "true" when one bad plugin stops the server.
	StrictSetting = "strict"
)

var (
	claimMu sync.Mutex
	claimed = map[string]bool{}
)

// ClaimType tells this plugin that another plugin in the build serves
// manifests of type t (say "mcp") from the same plugin directories: this
// one then leaves them alone instead of refusing them. Call it from init.
func ClaimType(t string) {
	claimMu.Lock()
	defer claimMu.Unlock()
	claimed[t] = true
}

func isClaimed(t string) bool {
	claimMu.Lock()
	defer claimMu.Unlock()
	return claimed[t]
}

func init() { plugin.Register(Name, New) }

// Plugin serves the tools of every external plugin directory.
type Plugin struct {
	tools   []plugin.Tool
	runners []runner
}

var (
	_ plugin.Plugin       = (*Plugin)(nil)
	_ plugin.Closer       = (*Plugin)(nil)
	_ plugin.Configurable = (*Plugin)(nil)
)

// runner runs calls to one plugin's tools.
type runner interface {
	run(ctx context.Context, call *plugin.Call) (*plugin.Result, error)
	close()
}

// New loads every plugin directory the host's settings name. A bad one is
// logged (naming its manifest) and left out; with the strict setting it
// is an error.
func New(host plugin.Host) (plugin.Plugin, error) {
	log := host.Logger()
	p := &Plugin{}
	raw := host.Setting(Name, DirsSetting)
	strict := host.Setting(Name, StrictSetting)
	if raw == "" {
		return p, nil
	}
	var dirs []string
	if err := json.Unmarshal([]byte(raw), &dirs); err != nil {
		return nil, &plugin.SettingError{Plugin: Name, Key: DirsSetting, Err: err}
	}
	isStrict, _ := strconv.ParseBool(strict)
	launcher, _ := host.Commands().(plugin.Launcher)
	taken := map[string]string{} // tool name -> who serves it
	for _, e := range host.Catalog().Entries() {
		taken[e.Tool.Name] = "built-in plugin " + e.Plugin
	}
	for _, dir := range dirs {
		m, err := Load(dir)
		if err == nil && m.Type != TypeExternal {
			if isClaimed(m.Type) {
				continue
			}
			err = m.errf("type %s is not served by this build", m.Type)
		}
		if err == nil {
			err = checkNames(m, taken)
		}
		var desc string
		if err == nil && launcher != nil {
			desc, err = launcher.LaunchConfinement(m.LaunchSpec(os.LookupEnv))
			if err != nil {
				err = m.errf("%v", err)
			}
		}
		if err != nil {
			leftOut(host, dir, m, err)
			if isStrict {
				return nil, fmt.Errorf("plugins.external: %w (plugins.strict is set)", err)
			}
			log.Error("external plugin left out", "dir", dir, "err", err)
			continue
		}
		for _, t := range m.Tools {
			taken[t.Name] = "external plugin " + m.File
		}
		var r runner
		if m.Mode == ModePersistent {
			r = newPersistent(m, launcher, log)
		} else {
			r = &perCall{m: m, launcher: launcher, log: log}
		}
		p.runners = append(p.runners, r)
		for _, t := range m.Tools {
			p.tools = append(p.tools, toTool(m, t, r))
		}
		if launcher != nil {
			log.Info("external plugin", "name", m.Name, "version", m.Version, "manifest", m.File, "mode", m.Mode,
				"tools", len(m.Tools), "sha256_pinned", m.SHA256 != "", "sandbox", desc)
		}
	}
	return p, nil
}

// leftOut audits a plugin directory left out, when the host keeps an
// audit log; a record that cannot be written is logged.
func leftOut(host plugin.Host, dir string, m *Manifest, err error) {
	rec, ok := host.(plugin.LeftOutRecorder)
	if !ok {
		return
	}
	l := plugin.LeftOut{Dir: dir, Reason: err.Error()}
	if m != nil {
		l.Plugin, l.Manifest = m.Name, m.File
	} else if me, ok := errors.AsType[*ManifestError](err); ok {
		l.Manifest = me.File
	}
	if aerr := rec.RecordLeftOut(context.Background(), l); aerr != nil {
		host.Logger().Error("the audit record of an external plugin left out could not be written", "dir", dir, "err", aerr)
	}
}

// checkNames refuses a tool name another plugin already serves.
func checkNames(m *Manifest, taken map[string]string) error {
	for _, t := range m.Tools {
		if who, dup := taken[t.Name]; dup {
			return m.errf("tool %q is already served by %s", t.Name, who)
		}
	}
	return nil
}

func toTool(m *Manifest, t ToolSpec, r runner) plugin.Tool {
	out := plugin.Tool{
		Name:        t.Name,
		Title:       t.Title,
		Description: t.Description,
		Category:    m.Name,
		InputSchema: t.Schema,
		Handler:     r.run,
	}
	if a := t.Annotations; a != nil {
		out.Annotations = &plugin.Annotations{Title: a.Title, ReadOnlyHint: a.ReadOnlyHint,
			DestructiveHint: a.DestructiveHint, IdempotentHint: a.IdempotentHint, OpenWorldHint: a.OpenWorldHint}
	}
	return out
}

// Info implements plugin.Plugin.
func (p *Plugin) Info() plugin.Info {
	return plugin.Info{Name: Name, Version: "1.0.0", Description: "tools of external programs listed in plugins.external"}
}

// Tools implements plugin.Plugin.
func (p *Plugin) Tools() []plugin.Tool { return slices.Clone(p.tools) }

// SettingKeys implements plugin.Configurable.
func (p *Plugin) SettingKeys() []string { return []string{DirsSetting, StrictSetting} }

// Close stops the persistent processes.
func (p *Plugin) Close() error {
	for _, r := range p.runners {
		r.close()
	}
	return nil
}
