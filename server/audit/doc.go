// Package audit writes one record per policy decision.
//
// # Records
//
// A [Record] follows the field names of OPA's decision-log events where
// they fit (decision_id, path, input, result, timestamp) and adds what an
// MCP server knows: the kind of decision, the tool, the client and the
// JSON-RPC request id. Guard decisions carry the tool call's decision id as
// parent_decision_id.
//
// # Redaction
//
// [Redact] replaces, at any depth and inside arrays, values under sensitive
// keys and string values that look like credentials with "[REDACTED]". The
// [Logger] redacts every record's input before it is written.
//
// # Failing closed
//
// [Logger.Log] returns an error wrapping [ErrWrite] when the sink fails; the
// server then refuses the call. Records are written on a context detached
// from the request, so a cancelled call is still recorded.
//
// # Sinks
//
// A [Sink] takes one encoded record per call. [FileSink] appends JSON Lines
// to a 0600 file with one write per record, so a record is with the
// operating system when Write returns. Package audittest checks any sink
// against the contract.
package audit
