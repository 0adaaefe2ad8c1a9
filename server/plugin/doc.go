// Package plugin defines the contract between the server and the plugins
// that serve its tools.
//
// # Registration
//
// A plugin package registers a [Factory] from its init function with
// [Register]. The binary chooses its plugins by blank-importing them from
// one file (cmd/mcp-secure/plugins.go). A duplicate or empty name panics at
// start-up.
//
// # Calls
//
// The server looks each tools/call up, validates its arguments against the
// tool's JSON Schema, rate limits it and asks the policy before the
// [Handler] runs. Handlers reach the rest of the server, and the world, only
// through the [Host].
package plugin
