package plugin

// Changing is a plugin whose tools change while the server runs: an
// upstream MCP server that comes up after a failed first start, or that
// announces notifications/tools/list_changed. The server calls Watch
// once, after registering the plugin's tools; the plugin calls changed
// whenever Tools would answer differently (never while holding a lock
// that Tools takes). The server then registers the difference and sends
// notifications/tools/list_changed to its client sessions.
type Changing interface {
	Watch(changed func())
}

// Pending is a plugin that can say why a tool it will serve is not
// served now (its server has not come up yet): a call to it gets that
// reason instead of only "not registered".
type Pending interface {
	// Pending is why tool, which the plugin does not offer now, is not
	// available, or "" when the name is none of the plugin's.
	Pending(tool string) string
}
