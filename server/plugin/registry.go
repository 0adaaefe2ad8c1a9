package plugin

import (
	"fmt"
	"slices"
	"sync"
)

// A Factory builds a plugin for one server. It validates what it needs
// from the host and returns an error rather than a half-built plugin.
type Factory func(host Host) (Plugin, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a plugin available under name. It is meant to be called
// from an init function; it panics on an empty name, a nil factory or a
// name registered twice, so a bad build cannot start.
func Register(name string, f Factory) {
	if name == "" {
		panic("plugin: Register with empty name")
	}
	if f == nil {
		panic(fmt.Sprintf("plugin: Register %q with nil factory", name))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("plugin: %q registered twice", name))
	}
	registry[name] = f
}

// Registered returns the names of all registered plugins, sorted.
func Registered() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[name]
	return f, ok
}
