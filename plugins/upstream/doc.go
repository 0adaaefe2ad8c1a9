// Package upstream offers the tools of other MCP servers (the policy's
// servers: section) through mcp-secure: every call to them goes through
// the server's pipeline (validation, rate limit, decision, audit) before
// it is forwarded.
//
// # Life of an upstream
//
// The caller (cmd/mcp-secure) hands [New] a [Launcher] that starts the
// server's process and returns it as a [plugin.Process] ([Door]: the
// server's launcher door with the server's [plugin.LaunchSpec], so an
// upstream runs in the same sandbox as an external plugin), and a [Pins]
// that remembers the tool definitions the operator accepted. New starts
// the process, connects to it as an MCP client (Go SDK, over the pipes),
// lists its tools and offers each as prefix+name with its title,
// description, schemas and annotations. A tool whose schema the server
// cannot compile, or whose name is not a plain MCP tool name, is left
// out and logged.
//
// When the process exits (a crash, a kill), calls get an error result
// saying the server is restarting, and a supervisor starts it again with
// exponential backoff (from 250 ms to 30 s, back to the minimum after a
// minute of uptime). Each start lists the tools again.
//
// # Rug pulls
//
// Every listing hands each definition to Pins.Observe, which pins a tool
// seen for the first time and remembers a changed one. Each decision
// asks Pins.State through the tool's Definition, so the policy sees
// input.tool_definition.changed, and the built-in rule denies a changed
// tool until the operator runs `mcp-secure tools approve NAME`.
// notifications/tools/list_changed from the upstream triggers a listing
// at once, so a description changed mid-session is caught at the next
// call. Tools that appear after start-up are logged and not offered
// (the set of tools is fixed when the server starts); tools that
// disappear answer with an error.
//
// # Notifications
//
// The upstream's logging notifications and its stderr go to the server's
// log (stderr, redacted), with the server's name; each stderr line is
// capped at 4 KiB. Progress
// notifications are not passed on.
package upstream
