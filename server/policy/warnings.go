package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gobwas/glob"
)

// warners look for things in a policy that load but are probably not what
// its author meant. Each gets the policy and the names of the registered
// tools and returns one line per finding. Other files add their own from
// init.
var warners []func(p *Policy, tools []string) []string

func init() {
	warners = append(warners, toolPatternWarnings)
}

// Warnings runs every warner and returns their findings, in order.
// `policy check` prints them and the server logs them at start-up.
func (p *Policy) Warnings(tools []string) []string {
	var out []string
	for _, w := range warners {
		out = append(out, w(p, tools)...)
	}
	return out
}

// toolPatternWarnings reports tools.allowed and tools.denied patterns that
// match no registered tool: tool names are case-sensitive, so LIST_* denies
// nothing when the tool is list_bugs.
func toolPatternWarnings(p *Policy, tools []string) []string {
	var out []string
	check := func(key string, patterns []string) {
		for i, pat := range patterns {
			if pat == "*" {
				continue
			}
			k := fmt.Sprintf("%s[%d]", key, i)
			loc := p.source
			if l := p.Line(k); l > 0 {
				loc = fmt.Sprintf("%s:%d", p.source, l)
			}
			g, err := glob.Compile(pat)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: %s: %q is not a valid glob: it matches no tool", loc, k, pat))
				continue
			}
			if slices.ContainsFunc(tools, g.Match) || p.upstreamPattern(pat) {
				continue
			}
			msg := fmt.Sprintf("%s: %s: %q matches no tool", loc, k, pat)
			if hint := suggestPattern(pat, tools); hint != "" {
				msg += fmt.Sprintf("; did you mean %s? (tool names are case-sensitive)", hint)
			}
			out = append(out, msg)
		}
	}
	if p.Tools.Allowed != nil {
		check("tools.allowed", *p.Tools.Allowed)
	}
	check("tools.denied", p.Tools.Denied)
	return out
}

// upstreamPattern reports whether pat may name tools of an upstream
// server of the servers section: they are known only once it has started
// and listed them.
func (p *Policy) upstreamPattern(pat string) bool {
	for name, s := range p.Servers {
		if pre := s.ToolPrefix(name); strings.HasPrefix(pat, pre) {
			return true
		}
	}
	return false
}

// suggestPattern offers the pattern in the case that matches a tool, if
// there is one.
func suggestPattern(pat string, tools []string) string {
	for _, c := range []string{strings.ToLower(pat), strings.ToUpper(pat)} {
		if c == pat {
			continue
		}
		if g, err := glob.Compile(c); err == nil && slices.ContainsFunc(tools, g.Match) {
			return c
		}
	}
	for _, t := range tools {
		if strings.EqualFold(t, pat) {
			return t
		}
	}
	return ""
}
