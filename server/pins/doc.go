// Package pins keeps the hashes of tool definitions an operator has
// accepted: rug-pull protection for tools whose definitions come from
// outside the binary (upstream MCP servers).
//
// # The state file
//
// One JSON file beside the audit log (tool-pins.json, mode 0600) maps
// each tool name to its pinned hash and to the hash (and definition) last
// seen. A tool seen for the first time at its server's initial listing
// is pinned at once ([Store.Observe], trust on first use); one first seen
// later ([Store.ObservePending]: a tool an upstream adds or renames while
// it runs) is pending, not pinned. A pending tool, and a definition whose
// hash differs from the pin ("changed"), stay so until [Store.Approve]
// (mcp-secure tools approve NAME) pins what was last seen. Writers take
// an advisory lock on the file's .lock companion, so the server and the
// approve command never lose each other's updates, and replace the file
// by an atomic rename. A running server notices an approval at the next
// call: [Store.Pinned] reloads the file when its modification time or
// size differ from what it read. It looks at the file (one stat) at most
// once a millisecond, so a listing that asks for every pinned tool looks
// once; an approval takes far longer than that to run.
//
// # The hash
//
// [Hash] is SHA-256 over the canonical JSON of name, description, input
// schema and output schema (object keys sorted), so the order in which a
// server writes its schema's keys does not matter, and any change to
// what the model is told does.
package pins
