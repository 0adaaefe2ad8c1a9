package policy

import (
	"fmt"
	"slices"
)

// A section the file leaves out gets its safe default: nothing it would
// open is opened. defaults says what each default means, for `policy
// check`.
var sectionDefaults = []struct {
	key     string
	meaning func(p *Policy) string
}{
	{"network", func(*Policy) string { return "no connections and no name resolution" }},
	{"filesystem", func(*Policy) string { return "no files" }},
	{"commands", func(*Policy) string { return "no commands" }},
	{"tools", func(p *Policy) string {
		return fmt.Sprintf("every registered tool, %d calls a minute each, %v timeout", DefaultRate, DefaultTimeout)
	}},
	{"audit", func(p *Policy) string { return "every field, logged to " + p.Audit.LogFile }},
	{"plugins", func(*Policy) string { return "each plugin's built-in settings" }},
}

// applyDefaults records the sections the file leaves out and gives them
// their safe defaults. Most zero values already are (no ranges, no
// endpoints, no paths); commands needs an empty allowlist, since a
// missing one means every executable that is not blocked.
func (p *Policy) applyDefaults() {
	p.defaulted = nil
	for _, s := range sectionDefaults {
		if _, present := p.lines[s.key]; present {
			continue
		}
		p.defaulted = append(p.defaulted, s.key+": "+s.meaning(p))
		if s.key == "commands" {
			none := []string{}
			p.Commands.Allowed = &none
		}
	}
}

// Defaulted lists the top-level sections the policy file leaves out, each
// with what its default means ("commands: no commands").
func (p *Policy) Defaulted() []string { return append([]string(nil), p.defaulted...) }

// EnvRefs are the variables the policy file takes from the environment
// with ${VAR} (its credentials among them: a decision-log token, a
// plugin's API key), sorted. They are the server's own: no child process
// may be handed one (see plugin.IsOwnEnv), whoever asks for it.
func (p *Policy) EnvRefs() []string { return slices.Clone(p.envRefs) }

// Line is the line of a dotted key path (plugins.bugtracker.database) in
// the policy file, or of its nearest parent present there; 0 if none.
func (p *Policy) Line(key string) int { return lineIn(p.lines, key) }

// Errorf returns an [*Error] located at key in the policy file.
func (p *Policy) Errorf(key, format string, args ...any) error {
	return &Error{File: p.source, Line: p.Line(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}
