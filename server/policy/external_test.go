package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExternalPlugins(t *testing.T) {
	for name, c := range map[string]struct {
		yaml     string
		dirs     []string
		strict   bool
		settings map[string]map[string]string
		err      string
	}{
		"ok/none": {yaml: "plugins:\n  bugtracker: {database: /db}\n",
			settings: map[string]map[string]string{"bugtracker": {"database": "/db"}}},
		"ok/relative-and-vars": {yaml: "plugins:\n  external: [plugins/hash, \"${TOOLS}/fmt\", ~/p]\n  strict: true\n",
			dirs: []string{"/etc/mcp/plugins/hash", "/opt/tools/fmt", "/home/ann/p"}, strict: true, settings: map[string]map[string]string{}},
		"ok/beside-settings": {yaml: "plugins:\n  bugtracker: {database: /db}\n  external: [/p]\n",
			dirs: []string{"/p"}, settings: map[string]map[string]string{"bugtracker": {"database": "/db"}}},
		"fail/not-a-list":  {yaml: "plugins:\n  external: /p\n", err: "reference.yaml:2: plugins.external: want a list"},
		"fail/strict-type": {yaml: "plugins:\n  strict: yes please\n", err: "plugins.strict: want true or false"},
		"fail/twice":       {yaml: "plugins:\n  external: [/p, /q/../p]\n", err: "plugins.external[1]: /p is listed twice"},
		"fail/empty":       {yaml: "plugins:\n  external: [\"\"]\n", err: "plugins.external[0]: empty plugin directory"},
		"fail/unset-var":   {yaml: "plugins:\n  external: [\"${NOPE}/x\"]\n", err: "variable NOPE is not set"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse("reference.yaml", "/etc/mcp", []byte(c.yaml), env(map[string]string{"HOME": "/home/ann", "TOOLS": "/opt/tools"}))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.dirs, p.External.Dirs); diff != "" {
				t.Errorf("dirs (-want +got):\n%s", diff)
			}
			if p.External.Strict != c.strict {
				t.Errorf("strict %v", p.External.Strict)
			}
			if diff := cmp.Diff(c.settings, p.Plugins); diff != "" {
				t.Errorf("plugin settings (-want +got):\n%s", diff)
			}
		})
	}
}
