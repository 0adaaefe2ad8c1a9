package policy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Server is one upstream MCP server (servers.<name>), shaped like the
// mcpServers block of client configurations: mcp-secure starts it as a
// child in the sandbox, speaks MCP to it over its stdin and stdout, and
// offers its tools under Prefix.
type Server struct {
	// Command is the executable: a bare name (looked up in the system
	// directories) or a path, relative to the policy file's directory.
	Command string   `yaml:"command" policy:"path"`
	Args    []string `yaml:"args" policy:"path"`
	// Env is the child's whole environment besides PATH and HOME: values
	// are literal, except ${VAR}, which takes VAR from the server's own
	// environment when the child starts (NAME: ${NAME} passes a variable
	// through). Values are never logged or audited. A name no child may
	// be given (the launcher door's list: loader and interpreter
	// variables, the server's own OTEL_* and MCP_SECURE_* and every
	// variable a ${VAR} elsewhere in the policy takes), or a ${VAR}
	// naming one of the server's own, keeps the server from starting.
	Env map[string]string `yaml:"env"`
	// Prefix is put before each tool's name; absent means "<name>__".
	Prefix *string `yaml:"prefix"`
	// Sandbox narrows what the child may reach below the policy.
	Sandbox ServerSandbox `yaml:"sandbox"`
}

// ServerSandbox narrows an upstream's sandbox: it can never widen the
// policy.
type ServerSandbox struct {
	// Paths, when present, are the only directories (each inside
	// filesystem.allowed_paths) the child may read and write; absent means
	// every allowed root.
	Paths *[]string `yaml:"paths" policy:"path"`
	// Ports, when present, are the only TCP ports (each a port of
	// network.allowed_endpoints) the child may connect to.
	Ports *[]int `yaml:"ports"`
	// Read are directories or files the child may only read: its code and
	// libraries (a script's directory, node_modules).
	Read []string `yaml:"read" policy:"path"`
}

// Compiled on first use, not in the package's init, which runs at every
// start of the server.
var (
	serverName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`) })
	envVarName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`) })
	toolPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{0,64}$`) })
)

// ToolPrefix is what the names of the server's tools start with.
func (s Server) ToolPrefix(name string) string {
	if s.Prefix != nil {
		return *s.Prefix
	}
	return name + "__"
}

// ServerNames are the names of servers, sorted.
func (p *Policy) ServerNames() []string {
	names := make([]string, 0, len(p.Servers))
	for n := range p.Servers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (p *Policy) validateServers(bad func(key, format string, args ...any) error) error {
	ports := p.ChildPorts()
	roots := p.Roots()
	prefixes := map[string]string{}
	for _, name := range p.ServerNames() {
		s := p.Servers[name]
		key := "servers." + name
		if !serverName().MatchString(name) {
			return bad(key, "a server name is letters, digits, - and _ (at most 64, not starting with - or _)")
		}
		if strings.TrimSpace(s.Command) == "" || strings.ContainsRune(s.Command, 0) {
			return bad(key+".command", "a server needs a command")
		}
		if strings.ContainsRune(s.Command, '/') {
			s.Command = p.abs(s.Command)
		}
		for i, a := range s.Args {
			if strings.ContainsRune(a, 0) {
				return bad(fmt.Sprintf("%s.args[%d]", key, i), "an argument contains a NUL byte")
			}
		}
		for k := range s.Env {
			if !envVarName().MatchString(k) {
				return bad(key+".env."+k, "%q is not an environment variable name", k)
			}
		}
		prefix := s.ToolPrefix(name)
		if !toolPrefix().MatchString(prefix) {
			return bad(key+".prefix", "a prefix is letters, digits, _, . and - (at most 64)")
		}
		if other, clash := PrefixClash(prefix, prefixes); clash {
			return bad(key+".prefix", "prefix %q overlaps the prefix of servers.%s (one starts the other: a tool name could be either's)", prefix, other)
		}
		prefixes[prefix] = name
		if sp := s.Sandbox.Paths; sp != nil {
			for i, path := range *sp {
				k := fmt.Sprintf("%s.sandbox.paths[%d]", key, i)
				path = p.abs(path)
				if !slices.ContainsFunc(roots, func(r string) bool { return within(path, r) }) {
					return bad(k, "%s is not inside filesystem.allowed_paths (a server's sandbox can only narrow the policy)", path)
				}
				(*sp)[i] = path
			}
		}
		if sp := s.Sandbox.Ports; sp != nil {
			for i, port := range *sp {
				if port < 1 || port > 65535 || !slices.Contains(ports, uint16(port)) {
					return bad(fmt.Sprintf("%s.sandbox.ports[%d]", key, i), "port %d is not a port of network.allowed_endpoints (a server's sandbox can only narrow the policy)", port)
				}
			}
		}
		for i, r := range s.Sandbox.Read {
			s.Sandbox.Read[i] = p.abs(r)
		}
		p.Servers[name] = s
	}
	return nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// PrefixClash finds, among taken (a prefix → who uses it), a prefix that
// prefix starts or that starts prefix: tool names under the two could
// be the same (a__b's tool x is a__b__x; a__'s tool b__x too), and one
// server's tool could take another's name and pin.
func PrefixClash(prefix string, taken map[string]string) (who string, clash bool) {
	for _, p := range slices.Sorted(maps.Keys(taken)) {
		if strings.HasPrefix(prefix, p) || strings.HasPrefix(p, prefix) {
			return taken[p], true
		}
	}
	return "", false
}
