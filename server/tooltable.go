package server

import (
	"sync"
	"sync/atomic"
)

// toolTable holds the registered tools by name. Most tools are
// registered once, before the server runs; a plugin whose tools change
// (plugin.Changing) adds and removes some while calls are in flight.
// Readers take no lock: the map they see is never changed once
// published, and writers publish a copy.
type toolTable struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[string]*registeredTool]
}

// get looks a tool up.
func (t *toolTable) get(name string) (*registeredTool, bool) {
	m := t.m.Load()
	if m == nil {
		return nil, false
	}
	rt, ok := (*m)[name]
	return rt, ok
}

// all is every registered tool; the map must not be changed.
func (t *toolTable) all() map[string]*registeredTool {
	if m := t.m.Load(); m != nil {
		return *m
	}
	return nil
}

// put registers rt under its name, replacing a tool of that name.
func (t *toolTable) put(rt *registeredTool) {
	t.update(func(m map[string]*registeredTool) { m[rt.Name] = rt })
}

// del removes the named tools.
func (t *toolTable) del(names ...string) {
	t.update(func(m map[string]*registeredTool) {
		for _, n := range names {
			delete(m, n)
		}
	})
}

func (t *toolTable) update(change func(map[string]*registeredTool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.all()
	m := make(map[string]*registeredTool, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	change(m)
	t.m.Store(&m)
}
