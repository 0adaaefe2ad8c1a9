package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/mcp-secure/mcp-secure/plugins/external"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// pluginSettings are the policy's plugin settings plus what the external
// plugin reads: the plugin directories (plugins.external) and
// plugins.strict.
func pluginSettings(pol *policy.Policy) map[string]map[string]string {
	out := maps.Clone(pol.Plugins)
	if out == nil {
		out = map[string]map[string]string{}
	}
	if len(pol.External.Dirs) == 0 {
		return out
	}
	dirs, _ := json.Marshal(pol.External.Dirs)
	s := map[string]string{external.DirsSetting: string(dirs)}
	if pol.External.Strict {
		s[external.StrictSetting] = "true"
	}
	out[external.Name] = s
	return out
}

// externalWarnings are the problems of the plugin directories that the
// server would leave out at start-up (policy check reports them; with
// plugins.strict they are errors instead). own are the variables the
// policy and its dry-run policy take (checked.envRefs).
func externalWarnings(pol *policy.Policy, own []string) []string {
	var out []string
	for _, dir := range pol.External.Dirs {
		m, err := external.Load(dir)
		if err != nil {
			out = append(out, "external plugin left out: "+err.Error())
			continue
		}
		// The server's own variables besides OTEL_* and MCP_SECURE_*
		// (those Load refuses) are the policies' ${VAR}: the launcher
		// door refuses them at start.
		for _, name := range m.Env {
			if err := plugin.CheckEnv(name, own); err != nil {
				out = append(out, fmt.Sprintf("plugin left out: %s: %v", m.File, err))
				break
			}
		}
	}
	return append(out, mcpWarnings(pol)...)
}

// pluginOrder is the order plugins are built in: the external plugin
// last, so it sees every built-in tool and refuses a manifest that
// declares one of their names (naming the manifest) instead of stopping
// the server.
func pluginOrder() []string {
	names := plugin.Registered()
	if i := slices.Index(names, external.Name); i >= 0 {
		names = append(slices.Delete(names, i, i+1), external.Name)
	}
	return names
}
