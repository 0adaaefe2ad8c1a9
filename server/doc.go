// Package server is the MCP server of mcp-secure: the go-sdk wiring, the
// stdio transport and the tools/call pipeline. It is the one place where
// outcomes become MCP results or JSON-RPC errors.
//
// # Requests
//
// [StdioTransport] reads newline-delimited JSON-RPC. It answers a line it
// cannot serve (not UTF-8 or JSON, too long, too deep, a batch, not
// JSON-RPC 2.0) with a JSON-RPC error and reads on; it refuses a request
// whose id is already in flight and requests past the in-flight cap. It
// answers every request it delivered before it reports the end of the
// input: at EOF calls run to their deadline, on [StdioTransport.Shutdown]
// (SIGTERM) they get a grace period and are then cancelled.
//
// Once a session's initialize is answered, and with telemetry off, the
// transport answers ping, plain tools/list and plain tools/call requests
// itself (the fast lane, fastlane.go): through the same pipeline, without
// the SDK's goroutine per request. A tools/list is answered with the
// bytes kept for the catalog view (the tool table, the policy snapshot,
// the caller and the protocol version; fastlist.go), encoded again only
// when one of them changes. Calls that only take CPU (a plugin.Tool marked
// Local, or an unknown tool) run on the goroutine that read them when
// nothing else waits, and on the connection's CPU workers (two per
// processor, cpu.go) when more requests are in flight; when those are
// behind, the reader runs the call itself, which holds the client back.
// The others run on pooled workers. Answers that come ready while one is
// being written go out together in the next write, made by the goroutine
// already writing; a request leaves the in-flight set only once its
// answer is written. Everything else goes to the SDK.
//
// # The pipeline
//
// Every tools/call goes through the pipeline: look the tool up, refuse
// arguments whose keys collide up to case, validate them against the
// tool's JSON Schema, rate limit, ask the policy (data.mcp.tools), decide
// the arguments the schema marks as paths, URLs or commands, run the
// handler under the call's deadline with the guards on its context, and
// record how it ended. Every decision is an audit record written before
// its effect; a failed audit write fails the call. A Local tool has no
// effect but its answer: its decision and result records are written
// together, before the answer. Refusals a client can
// repeat for free are recorded within a budget and counted past it.
//
// # Identity
//
// A session that began with initialize keeps the client info and protocol
// version of its handshake; only the stateless protocol takes them from
// each request's _meta. Either way the identity is self-asserted: a label
// for policy rules, not authentication.
//
// # Plugins
//
// [New] builds the plugins named in [Options] through the registry of
// server/plugin and hands each a Host whose doors are the guards;
// tools/list and the discovery tools offer only what the policy lets the
// caller use. [Server.Close] closes the plugins that hold resources.
package server
