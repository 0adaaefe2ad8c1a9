// Package audit writes one record per policy decision and per finished
// call, as evidence: redacted, bounded, masked and hash-chained.
//
// # Records
//
// A [Record] follows the field names of OPA's decision-log events where
// they fit (decision_id, path, input, result, timestamp, labels) and adds
// what an MCP server knows: the kind of record, the tool, the client, the
// session and the JSON-RPC request id. Guard decisions carry the tool
// call's decision id as parent_decision_id. A tool_result record gives a
// finished call's status and duration; an audit_summary record stands for
// count identical records coalesced over window_ns.
//
// # Redaction
//
// The [Logger] redacts every string a client could have chosen: the tool
// name, reasons, error, client name and version, ids, and every key and
// value of the input. Only the secret-shaped part of a string is replaced
// ("id # Bearer [REDACTED:1f2e3d4c5b6a7980]"), so a string cannot hide what
// it says by carrying something that looks like a credential. A value
// under a sensitive key (password, api_key, ...) is replaced whole. Each
// marker carries a fingerprint: the first 8 bytes of HMAC-SHA256 of the
// secret under a per-installation key ([LoadKey], audit.key beside the
// log, 0600), so one secret can be followed across records without being
// recoverable. [NewRedactingHandler] applies the same rules to stderr, where
// URLs also lose their userinfo and the values of their query.
//
// # Size
//
// Every string, key, array and object over [Options.MaxValueBytes]
// (default 4 KiB) becomes {"truncated": true, "bytes": N, "sha256": ...};
// a record over [Options.MaxRecordBytes] (default 64 KiB) gives up its
// input, then its reasons, error, tool, client and ids, the same way.
//
// # Masks
//
// An optional [Masker] (the engine, with package mcp.audit) names JSON
// pointers to erase or replace, as OPA's decision-log masks do; the record
// lists them under "erased" and "masked". If the masks fail, the whole
// input is erased and "mask_error" says why.
//
// # Tamper evidence
//
// Each line ends with "prev_hash" (the hash of the line before) and
// "hash" (SHA-256 of the line up to and including prev_hash). A chain
// starts with an audit_genesis record: in a new file, after rotation (its
// prev_hash links to the rotated file) and after a torn or foreign last
// line (it says so). [Verify] reports the first broken link by file and
// line: a changed byte, a deleted, inserted or reordered line, a torn
// tail. Deleting the newest records at the end cannot be seen from the
// files alone: keep the last hash [Verify] prints somewhere else.
//
// # Failing closed
//
// [Logger.Log] returns an error wrapping [ErrWrite] when the record cannot
// be written; the server then refuses the call. Records are written on a
// context detached from the request, so a cancelled call is still recorded.
//
// # Sinks
//
// A [Sink] takes one encoded record per call. [FileSink] appends JSON
// Lines with one write per record, so a record is with the operating
// system when Write returns (and on disk with [FileOptions.Sync]). It
// opens the file without following a symbolic link and refuses anything
// but a regular file owned by the server's user, without blocking on a
// FIFO. Before every write it checks that the path still names the file it
// opened; if not ([ErrReplaced]) it fails closed rather than reopening,
// since it cannot tell an operator's move from an attacker's swap. It
// rotates by size, keeping [FileOptions.Retention] old files. Package
// audittest checks any sink against the contract.
package audit
