package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/policy"
)

func TestServers(t *testing.T) {
	const head = `version: "1.0"
network:
  allowed_endpoints: [{host: api.example.com, ports: [443]}]
filesystem:
  allowed_paths: ["/srv/work/**"]
audit:
  log_file: /var/log/mcp/audit.log
`
	lookup := func(name string) (string, bool) {
		if name == "HOME" {
			return "/home/u", true
		}
		return "", false
	}
	for name, tc := range map[string]struct {
		servers string
		err     string // "" means it loads
	}{
		"ok/minimal":          {"servers:\n  docs:\n    command: node\n    args: [/opt/docs/server.js]\n", ""},
		"ok/narrowed-sandbox": {"servers:\n  docs:\n    command: node\n    sandbox:\n      paths: [/srv/work/docs]\n      ports: [443]\n      read: [/opt/docs]\n", ""},
		"ok/env-reference":    {"servers:\n  gh:\n    command: gh-mcp\n    env:\n      TOKEN: \"${GH_TOKEN}\"\n", ""},
		"ok/empty-prefix":     {"servers:\n  docs:\n    command: node\n    prefix: \"\"\n", ""},
		"bad/name":            {"servers:\n  \"-x\":\n    command: node\n", "servers.-x"},
		"bad/no-command":      {"servers:\n  docs:\n    args: [x]\n", "servers.docs.command"},
		"bad/unknown-key":     {"servers:\n  docs:\n    command: node\n    cwd: /tmp\n", "unknown key"},
		// Names no child may be given are refused when the server starts
		// (the launcher door's one list), leaving only that server out.
		"ok/loader-env-refused-at-start": {"servers:\n  docs:\n    command: node\n    env:\n      LD_PRELOAD: /x.so\n", ""},
		"bad/env-name":                   {"servers:\n  docs:\n    command: node\n    env:\n      \"A-B\": x\n", "not an environment variable name"},
		"bad/path-outside":               {"servers:\n  docs:\n    command: node\n    sandbox:\n      paths: [/etc]\n", "can only narrow"},
		"bad/port-outside":               {"servers:\n  docs:\n    command: node\n    sandbox:\n      ports: [22]\n", "can only narrow"},
		"bad/duplicate-prefix": {"servers:\n  a:\n    command: node\n    prefix: x_\n  b:\n    command: node\n    prefix: x_\n",
			"prefix \"x_\" overlaps the prefix of servers.a"},
		// a's tool b__x and the tools of the server named a__b (prefix
		// a__b__) would share names.
		"bad/prefix-starts-another": {"servers:\n  a:\n    command: node\n  a__b:\n    command: node\n",
			"overlaps the prefix of servers.a"},
		"bad/empty-prefix-beside-another": {"servers:\n  a:\n    command: node\n    prefix: \"\"\n  b:\n    command: node\n",
			"overlaps the prefix of servers."},
		"bad/prefix-chars": {"servers:\n  docs:\n    command: node\n    prefix: \"a b\"\n", "servers.docs.prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := policy.Parse("policy.yaml", "/etc/mcp", []byte(head+tc.servers), lookup)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				for n, s := range p.Servers {
					if s.Command == "" || s.ToolPrefix(n) == "x" {
						t.Errorf("server %s = %+v", n, s)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Parse error = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestServerDefaults(t *testing.T) {
	p, err := policy.Parse("policy.yaml", "/etc/mcp", []byte(`version: "1.0"
servers:
  docs:
    command: ./bin/docs-server
    env:
      TOKEN: "${NOT_EXPANDED_AT_LOAD}"
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s := p.Servers["docs"]
	if s.Command != "/etc/mcp/bin/docs-server" {
		t.Errorf("command = %q, want it relative to the policy", s.Command)
	}
	if s.ToolPrefix("docs") != "docs__" {
		t.Errorf("prefix = %q", s.ToolPrefix("docs"))
	}
	if s.Env["TOKEN"] != "${NOT_EXPANDED_AT_LOAD}" {
		t.Errorf("env value expanded at load: %q (secrets are read when the child starts)", s.Env["TOKEN"])
	}
	if d := p.Data(); strings.Contains(fmt.Sprint(d), "docs-server") {
		t.Errorf("servers leaked into the policy data: %v", d)
	}
}
