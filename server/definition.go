package server

import (
	"fmt"

	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// definitionOf is input.tool_definition for t: asked of the plugin at
// each decision, so an approval or a change the plugin noticed counts at
// once. A tool of the binary (no Definition) is unchanged.
func definitionOf(t *registeredTool) engine.ToolDefinition {
	if t == nil || t.Definition == nil {
		return engine.ToolDefinition{}
	}
	d := t.Definition()
	return engine.ToolDefinition{Changed: d.Changed, Hash: d.Hash, Pinned: d.Pinned}
}

// addPlugin registers the tools of a plugin built outside the registry.
func (s *Server) addPlugin(pl plugin.Plugin) error {
	info := pl.Info()
	s.built = append(s.built, pl)
	if c, ok := pl.(plugin.Closer); ok {
		s.closers = append(s.closers, namedCloser{info.Name, c})
	}
	for _, t := range pl.Tools() {
		if _, dup := s.pipe.tools.get(t.Name); dup {
			// A tool from outside the binary (an upstream server's) may
			// not take a name already served: it is left out, the rest
			// is served.
			s.log.Error("tool left out: its name is already served", "plugin", info.Name, "tool", t.Name)
			continue
		}
		if err := s.addTool(info, t); err != nil {
			return fmt.Errorf("server: plugin %q: %w", info.Name, err)
		}
	}
	return nil
}
