// Package upstream offers the tools of other MCP servers (the policy's
// servers: section, and plugin directories whose manifest is of type
// mcp) through mcp-secure: every call to them goes through the server's
// pipeline (validation, rate limit, decision, audit) before it is
// forwarded.
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
// # The connection
//
// One reader takes the process's stdout a line at a time. Calls are
// forwarded without the SDK: each tools/call goes out as one line with a
// string id of ours ("ms-N"; the SDK's ids are numbers), and its answer
// is decoded once, straight into the text, structured content and
// isError a result needs (image and audio data are measured, not kept),
// and handed to the waiting call. Everything else the upstream sends
// (the handshake's answers, tools/list, its notifications and requests)
// goes to the SDK's client session, in the order read. Writes from both
// go through one lock and are bounded by the caller's deadline; a
// message written only in part closes the connection (the rest would be
// read as the next message), and the supervisor restarts the server.
//
// A call whose context ends first (the policy's timeout, a cancelled
// request) is told to the upstream with notifications/cancelled; its
// answer, if it comes, is dropped, as is any answer to no call in
// flight. A line that is not JSON (stray output of the server) is
// logged, capped, and dropped. A message over 16 MiB closes the
// connection: the calls in flight get an error result saying so, and
// the server is restarted. Result text over 1 MiB is truncated.
//
// When the process exits (a crash, a kill), calls get an error result
// saying the server is restarting, and a supervisor starts it again with
// exponential backoff (from 250 ms to 30 s, back to the minimum after a
// minute of uptime). Each start lists the tools again. A first start
// that fails is retried the same way: New returns [ErrNotStarted] with
// an Upstream that offers no tools yet; a call to a tool under its
// prefix is refused with the reason (plugin.Pending), and once the
// server is up its tools are offered.
//
// # Rug pulls
//
// Every listing hands each definition to Pins.Observe, which remembers a
// changed one and pins a tool seen for the first time only at the
// upstream's initial listing (trust on first use): a tool first seen at
// a later listing (added or renamed at run time, or after a restart) is
// left pending, so a compromised upstream cannot rename a pinned tool
// to get a poisoned description past the pins. Each decision asks
// Pins.State through the tool's Definition, so the policy sees
// input.tool_definition.changed, and the built-in rule denies a changed
// or pending tool until the operator runs `mcp-secure tools approve
// NAME`. A tool is allowed only as the definition it was offered with:
// its hash must be both the upstream's current one and the pinned one.
//
// # Tools that change
//
// notifications/tools/list_changed from the upstream triggers a listing
// at once, observed by the pins as at a later listing. One listing runs
// at a time: notifications arriving while it runs make exactly one more,
// so a flood of them costs two listings. The plugin's tools
// become the new listing (tools added, removed, definitions as offered
// now) and the server is told (plugin.Changing), which registers the
// difference and sends notifications/tools/list_changed to its client
// sessions. A changed definition, and a new tool, are denied until
// approved, and left out of tools/list meanwhile; a tool gone answers
// "not registered".
//
// # Notifications
//
// The upstream's stderr goes to the server's log (stderr, redacted),
// each line capped at 4 KiB. Its log messages (notifications/message;
// the level "info" is asked for) go to the server's log with the
// server's name, their data as attributes so that the log's handler
// redacts values under sensitive keys, and to the client session with
// calls to this upstream in flight, as they came: the server redacts the
// structured data, then caps it at 16 KiB. A log message names no call,
// so while calls of several sessions are in flight it could be about any
// of them: it then goes to the server's log only. Progress notifications
// are passed on to the call they belong to: a call whose client sent a
// progressToken is forwarded with a token of ours, mapped back to the
// client's. Progress that arrives after the call was answered is
// dropped; log messages still reach its session for a short while
// (250 ms), since the SDK may handle a message sent just before the
// answer after it.
package upstream
