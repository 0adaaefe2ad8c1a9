package policy

import (
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Data is the policy compiled for Rego: the document stored at
// data.mcp.policy. Every value is JSON-compatible.
func (p *Policy) Data() map[string]any {
	n := p.Network
	endpoints := map[string]any{}
	for _, e := range n.AllowedEndpoints {
		var ports []any
		if prev, ok := endpoints[e.Host].(map[string]any); ok {
			ports = prev["ports"].([]any)
		}
		for _, port := range e.Ports {
			if !slices.Contains(ports, any(port)) {
				ports = append(ports, port)
			}
		}
		endpoints[e.Host] = map[string]any{"ports": ports, "description": e.Description}
	}
	var allowedCmds any // null: no allowlist
	allowedCmdPaths := []any{}
	if p.Commands.Allowed != nil {
		names := []string{}
		for _, c := range *p.Commands.Allowed {
			if c = strings.TrimSpace(c); filepath.IsAbs(c) {
				if c = filepath.Clean(c); !slices.Contains(allowedCmdPaths, any(c)) {
					allowedCmdPaths = append(allowedCmdPaths, c)
				}
			} else {
				names = append(names, c)
			}
		}
		allowedCmds = commandNames(names)
	}
	toolsAllowed := []any{"*"}
	if p.Tools.Allowed != nil {
		toolsAllowed = strs(*p.Tools.Allowed, nil)
	}
	rates := map[string]any{}
	for k, v := range p.Tools.RateLimits {
		rates[k] = v
	}
	return map[string]any{
		"version": "1.0",
		"network": map[string]any{
			"allowed_ranges": strs(n.AllowedRanges, nil),
			"endpoints":      endpoints,
			"blocked_ports":  ints(n.BlockedPorts),
			"allow_dns":      n.AllowDNS,
			"dns_allowlist":  strs(n.DNSAllowlist, nil),
		},
		"filesystem": map[string]any{
			"allowed_paths": p.globs(p.Filesystem.AllowedPaths, false),
			"denied_paths":  p.globs(p.Filesystem.DeniedPaths, true),
		},
		"commands": map[string]any{
			"blocked":       commandNames(p.Commands.Blocked),
			"allowed":       allowedCmds,
			"allowed_paths": allowedCmdPaths,
			"unconfined":    p.Commands.Unconfined,
		},
		"tools": map[string]any{
			"allowed":         toolsAllowed,
			"allow_all":       slices.Contains(toolsAllowed, any("*")),
			"denied":          strs(p.Tools.Denied, nil),
			"rate_limits":     rates,
			"timeout_seconds": p.Timeout().Seconds(),
		},
	}
}

// globs cleans path globs. Every pattern is absolute or starts with **
// (Parse refuses the rest). A trailing / means the directory and
// everything below it; a pattern ending in /** also matches the directory
// itself. Deny globs are lower-cased: they match case-insensitively.
func (p *Policy) globs(list []string, lower bool) []any {
	out := []any{}
	add := func(g string) {
		if lower {
			g = strings.ToLower(g)
		}
		if !slices.Contains(out, any(g)) {
			out = append(out, g)
		}
	}
	for _, g := range list {
		g = strings.TrimSpace(g)
		below := strings.HasSuffix(g, "/")
		if strings.HasPrefix(g, "/") {
			g = filepath.Clean(g)
		} else {
			g = path.Clean(g) // **/secrets/ -> **/secrets
		}
		if below && !strings.HasSuffix(g, "/**") && g != "**" {
			g = strings.TrimSuffix(g, "/") + "/**"
		}
		add(g)
		if dir, ok := strings.CutSuffix(g, "/**"); ok && dir != "**" {
			if dir == "" {
				dir = "/"
			}
			add(dir)
		}
	}
	return out
}

// commandNames lower-cases command names and keeps their base names.
func commandNames(list []string) []any {
	return strs(list, func(s string) string { return strings.ToLower(filepath.Base(strings.TrimSpace(s))) })
}

func strs(list []string, f func(string) string) []any {
	out := make([]any, 0, len(list))
	for _, s := range list {
		if f != nil {
			s = f(s)
		}
		if !slices.Contains(out, any(s)) {
			out = append(out, s)
		}
	}
	return out
}

func ints(list []int) []any {
	out := make([]any, 0, len(list))
	for _, i := range list {
		if !slices.Contains(out, any(i)) {
			out = append(out, i)
		}
	}
	return out
}

// Roots are the directories filesystem access is confined to: for each
// allowed path glob, its longest leading part without glob characters
// (escaped ones count as literal). A pattern without glob characters is
// its own root.
func (p *Policy) Roots() []string {
	var roots []string
	for _, g := range p.globs(p.Filesystem.AllowedPaths, false) {
		pattern := g.(string)
		var keep []string
		for seg := range strings.SplitSeq(pattern, "/") {
			lit, ok := unescapeGlob(seg)
			if !ok {
				break
			}
			keep = append(keep, lit)
		}
		root := filepath.Clean("/" + strings.Join(keep, "/")) // **/x: anywhere
		if !slices.Contains(roots, root) {
			roots = append(roots, root)
		}
	}
	return roots
}

// unescapeGlob returns the literal text a glob segment matches, or false
// if it has an unescaped glob character.
func unescapeGlob(seg string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c == '\\' && i+1 < len(seg):
			i++
			b.WriteByte(seg[i])
		case strings.IndexByte(globMeta, c) >= 0:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
