package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// fakePlugin reads the settings named in reads while it is built and
// declares more through SettingKeys when declared is non-nil.
type fakePlugin struct {
	name     string
	declared []string
	tools    []string
}

func (f *fakePlugin) Info() plugin.Info { return plugin.Info{Name: f.name} }
func (f *fakePlugin) Tools() []plugin.Tool {
	var out []plugin.Tool
	for _, t := range f.tools {
		out = append(out, plugin.Tool{Name: t})
	}
	return out
}

type configurable struct{ *fakePlugin }

func (c configurable) SettingKeys() []string { return c.declared }

func TestCheckPlugins(t *testing.T) {
	factories := map[string]plugin.Factory{
		"reader": func(h plugin.Host) (plugin.Plugin, error) {
			if v := h.Setting("reader", "mode"); v != "" && v != "fast" {
				return nil, fmt.Errorf("plugins.reader.mode: %q is not fast", v)
			}
			h.Setting("other", "spy") // another plugin's key: not this one's
			return &fakePlugin{name: "reader", tools: []string{"read_it"}}, nil
		},
		"lazy": func(h plugin.Host) (plugin.Plugin, error) {
			return configurable{&fakePlugin{name: "lazy", declared: []string{"endpoint"}, tools: []string{"lazy_tool"}}}, nil
		},
		"typed": func(h plugin.Host) (plugin.Plugin, error) {
			if h.Setting("typed", "level") == "9" {
				return nil, fmt.Errorf("building: %w", &plugin.SettingError{Plugin: "typed", Key: "level", Err: errors.New("level 9 is too high")})
			}
			return &fakePlugin{name: "typed"}, nil
		},
		"broken": func(h plugin.Host) (plugin.Plugin, error) {
			if h.Setting("broken", "fail") == "yes" {
				return nil, errors.New("cannot start")
			}
			return &fakePlugin{name: "broken"}, nil
		},
	}
	names := []string{"broken", "lazy", "reader", "typed"}
	lookup := func(n string) (plugin.Factory, bool) { f, ok := factories[n]; return f, ok }
	for name, tc := range map[string]struct {
		plugins   string
		wantErr   string
		wantTools []string
	}{
		"allow/no-settings":        {plugins: "", wantTools: []string{"lazy_tool", "read_it"}},
		"allow/read-key":           {plugins: "  reader:\n    mode: fast\n", wantTools: []string{"lazy_tool", "read_it"}},
		"allow/declared-key":       {plugins: "  lazy:\n    endpoint: x\n", wantTools: []string{"lazy_tool", "read_it"}},
		"deny/unknown-plugin":      {plugins: "  raeder:\n    mode: fast\n", wantErr: `p.yaml:3: plugins.raeder: unknown plugin "raeder"; did you mean reader?`},
		"deny/unknown-key":         {plugins: "  reader:\n    mdoe: fast\n", wantErr: `p.yaml:4: plugins.reader.mdoe: plugin reader has no setting "mdoe"; did you mean mode? (known: mode)`},
		"deny/key-of-another":      {plugins: "  other:\n    spy: x\n", wantErr: `unknown plugin "other"`},
		"deny/undeclared-lazy-key": {plugins: "  lazy:\n    endpiont: x\n", wantErr: `p.yaml:4: plugins.lazy.endpiont: plugin lazy has no setting "endpiont"; did you mean endpoint?`},
		"deny/no-settings-at-all":  {plugins: "  typed:\n    colour: red\n", wantErr: `p.yaml:4: plugins.typed.colour: plugin typed has no setting "colour" (known: level)`},
		"deny/bad-value-message":   {plugins: "  reader:\n    mode: slow\n", wantErr: `p.yaml:4: plugins.reader.mode: "slow" is not fast`},
		"deny/bad-value-typed":     {plugins: "  typed:\n    level: \"9\"\n", wantErr: `p.yaml:4: plugins.typed.level: level 9 is too high`},
		"deny/plugin-fails":        {plugins: "  broken:\n    fail: \"yes\"\n", wantErr: `p.yaml:3: plugins.broken: plugin broken: cannot start`},
	} {
		t.Run(name, func(t *testing.T) {
			src := "version: \"1.0\"\nplugins:\n" + tc.plugins
			if tc.plugins == "" {
				src = "version: \"1.0\"\n"
			}
			pol, err := policy.Parse("p.yaml", "/", []byte(src), func(string) (string, bool) { return "/h", true })
			if err != nil {
				t.Fatal(err)
			}
			tools, err := checkPluginsIn(pol, names, lookup)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v\nwant %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantTools, tools); diff != "" {
				t.Errorf("tools (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloseNames(t *testing.T) {
	cands := []string{"bugtracker", "discovery", "websearch"}
	for in, want := range map[string]string{"bugtrackr": "bugtracker", "BugTracker": "bugtracker", "websaerch": "websearch", "zzz": "", "": ""} {
		if got := closest(in, cands); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}
