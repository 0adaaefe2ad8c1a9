// Package external serves the tools of external plugins: programs in any
// language that the operator lists by directory in the policy
// (plugins.external), each described by a manifest.yaml.
//
// # The manifest
//
//	name: hash                  # letters, digits, _ . -
//	version: 1.0.0
//	type: external              # (mcp: an upstream MCP server, served elsewhere)
//	executable: hash            # relative to the manifest, inside its directory
//	interpreter: node           # optional: run "node <executable> args..."
//	args: [--fast]              # optional
//	sha256: 3b0c…               # optional: pins the executable
//	mode: persistent            # optional; per-call (the default) or persistent
//	env: [HASH_SALT]            # optional: variables passed from the server's environment
//	sandbox:                    # optional: can only narrow the policy
//	  paths: [/srv/data]        # of filesystem.allowed_paths, only what lies below these
//	  ports: [443]              # of the policy's TCP ports, only these
//	tools:
//	  - name: sha256_text
//	    description: SHA-256 of a text
//	    input_schema: {type: object, properties: {text: {type: string}}, required: [text]}
//	    annotations: {readOnlyHint: true}
//
// [Load] parses and validates a manifest, finds its executable (which must
// lie inside the plugin directory) and checks its sha256; every error is
// a [*ManifestError] naming the file. The sha256 travels in the launch
// spec too: the launcher door checks it again at every start (hashing a
// file again only once it has changed), so an executable replaced after
// loading is refused; the sandbox's launcher then checks, just before it
// starts the target, that the path still names the very file hashed. Other plugins that read plugin directories (type
// mcp) use it too and call [ClaimType]. A directory left out at start-up
// is logged and, when the host keeps an audit log
// ([plugin.LeftOutRecorder]), recorded there (kind plugin, result deny,
// with the plugin's name, its manifest and the reason).
//
// # Type mcp
//
// A manifest of type mcp names an MCP server instead of tools:
//
//	name: notes
//	version: 1.0.0
//	type: mcp
//	executable: server.mjs      # relative to the manifest
//	interpreter: node           # optional, as above
//	args: [--stdio]             # optional
//	sha256: 3b0c…               # optional: pins the executable (checked at every start)
//	env: [NOTES_TOKEN]          # optional
//	tool_prefix: notes__        # optional; absent means "<name>__"
//	sandbox: {paths: [/srv/notes], ports: [443]}
//
// It is served like an entry of the policy's servers: section (the
// upstream plugin: tool pins, restarts, notifications), its process
// started and confined like an external plugin's. This package leaves
// such manifests to whoever claimed the type; tools and mode are refused
// in them.
//
// # The protocol
//
// Per call (the default), the executable starts, reads one JSON object
// {"tool": NAME, "arguments": {...}} on stdin and writes one JSON object
// {"content": [{"type": "text", "text": "..."}], "isError": false} on
// stdout (structuredContent, an object, is optional). A non-zero exit, a
// crash, an answer that is not such an object or is larger than 1 MiB are
// error results naming what went wrong; a call that runs past the
// policy's timeout kills the process and everything it started. stderr
// goes to the server's log, capped and redacted.
//
// In persistent mode one process serves every call: requests and answers
// are one JSON object a line, one call at a time. Each request carries an
// "id" (1, 2, ...); a process that copies it into its answer lets a late
// answer to an abandoned call be skipped instead of taken for the next. A process that exits,
// answers garbage or runs past a call's deadline is killed and started
// again on the next call, after a backoff (100 ms doubling up to 5 s).
//
// # Trust and confinement
//
// The arguments are validated against the manifest's schema and decided
// by the policy like any tool's before the process starts. The program
// runs because the operator listed its directory, not through
// commands.allowed: it, its #! interpreter chain (or the interpreter the
// manifest names) and the plugin directory may be executed. It runs in
// the sandbox of the command door (Landlock, no_new_privs, rlimits, a
// subreaper), with read-write access only to the policy's allowed
// directories (narrowed by sandbox.paths), TCP connect only to the
// policy's ports (narrowed by sandbox.ports), a fixed PATH and no
// environment beyond the variables the manifest names. A manifest that
// names a variable no child may be given ([plugin.EnvRefusal]: the
// server's own, OTEL_* and MCP_SECURE_* among them, or one that changes
// how a program loads code, such as LD_PRELOAD or NODE_OPTIONS) is
// refused. Plugin directories are off limits to tools like the server's
// own files.
package external
