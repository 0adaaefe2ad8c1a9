package server

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// A plugin whose tools change while the server runs (plugin.Changing:
// an upstream MCP server that came up late or announced
// notifications/tools/list_changed) tells the server, which registers
// the difference: new tools are added (a name another plugin serves is
// left out, logged), tools gone are removed, changed ones replaced. The
// SDK then sends notifications/tools/list_changed to the sessions, as
// after a policy reload. What a tool may do is still decided at each
// call: a definition that changed since it was pinned (or a tool that
// appeared after the initial listing) is denied, and left out of
// tools/list, until the operator approves it. Calls are dispatched from
// the pipeline's table alone (server.go), so a call racing a refresh
// is decided and audited.

// watchPlugins subscribes to the plugins whose tools change, and
// gathers those that may serve a tool later.
func (s *Server) watchPlugins() {
	for _, pl := range s.built {
		if p, ok := pl.(plugin.Pending); ok {
			s.pipe.pending = append(s.pipe.pending, p)
		}
		if c, ok := pl.(plugin.Changing); ok {
			c.Watch(func() { s.refresh(pl) })
			// A change between the first Tools and Watch is not lost.
			s.refresh(pl)
		}
	}
}

// refresh registers the difference between the tools pl offers now and
// those registered for it.
func (s *Server) refresh(pl plugin.Plugin) {
	s.dyn.Lock()
	defer s.dyn.Unlock()
	info := pl.Info()
	now := map[string]plugin.Tool{}
	for _, t := range pl.Tools() {
		now[t.Name] = t
	}
	var removed, added, changed []string
	for name, rt := range s.pipe.tools.all() {
		if _, ok := now[name]; rt.plugin == info.Name && !ok {
			removed = append(removed, name)
		}
	}
	if len(removed) > 0 {
		s.pipe.tools.del(removed...)
		s.mcp.RemoveTools(removed...)
	}
	for _, name := range slices.Sorted(maps.Keys(now)) {
		t := now[name]
		old, ok := s.pipe.tools.get(name)
		switch {
		case ok && old.plugin != info.Name:
			s.log.Error("tool left out: its name is already served", "plugin", info.Name, "tool", name, "served_by", old.plugin)
			continue
		case ok && sameTool(old.Tool, t):
			continue
		}
		if err := s.putTool(info, t); err != nil {
			s.log.Error("tool left out", "plugin", info.Name, "tool", name, "err", err)
			continue
		}
		if ok {
			changed = append(changed, name)
		} else {
			added = append(added, name)
		}
	}
	if s.anyTool != nil && slices.Contains(removed, s.anyTool.Name) {
		s.anyTool = nil
		for _, rt := range s.pipe.tools.all() {
			s.anyTool = mcpTool(rt.Tool)
			break
		}
	}
	if len(removed)+len(added)+len(changed) > 0 {
		s.log.Info("the tools of a plugin changed; notifying sessions", "plugin", info.Name,
			"added", added, "removed", removed, "changed", changed)
	}
}

// sameTool reports whether a and b tell clients the same thing (the
// handler and definition check of a plugin's tool stay its own).
func sameTool(a, b plugin.Tool) bool {
	return a.Title == b.Title && a.Description == b.Description && a.Category == b.Category &&
		jsonEqual(a.InputSchema, b.InputSchema) && jsonEqual(a.OutputSchema, b.OutputSchema) &&
		reflect.DeepEqual(a.Annotations, b.Annotations) && slices.Equal(a.Aliases, b.Aliases) &&
		slices.Equal(a.Intents, b.Intents)
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}

// mcpTool is t as the SDK lists it.
func mcpTool(t plugin.Tool) *mcp.Tool {
	mt := &mcp.Tool{
		Name:        t.Name,
		Title:       t.Title,
		Description: t.Description,
		InputSchema: t.InputSchema,
	}
	if len(t.OutputSchema) > 0 {
		mt.OutputSchema = t.OutputSchema
	}
	if a := t.Annotations; a != nil {
		mt.Annotations = &mcp.ToolAnnotations{Title: a.Title, ReadOnlyHint: a.ReadOnlyHint,
			DestructiveHint: a.DestructiveHint, IdempotentHint: a.IdempotentHint, OpenWorldHint: a.OpenWorldHint}
	}
	return mt
}

// pendingReason is why a plugin that will serve tool later does not
// serve it now, or "".
func (p *pipeline) pendingReason(tool string) string {
	for _, pl := range p.pending {
		if why := pl.Pending(tool); why != "" {
			return why
		}
	}
	return ""
}
