// Package policy loads the YAML security policy and compiles it into the
// data document the Rego modules read at data.mcp.policy.
//
// # Loading
//
// [Load] reads a file strictly: an unknown key, a value of the wrong type,
// a bad CIDR, a port outside 1-65535, a negative rate or an unset ${VAR} is
// an [Error] naming the file, the line and the key. ${VAR} and
// ${VAR:-default} expand in path-valued keys (filesystem paths, the audit
// log file, Rego module paths); a leading ~/ means the home directory.
// [Default] returns the embedded default policy.
//
// # Compiling
//
// [Policy.Data] is the normalised document: CIDRs in canonical form, host
// names lower-cased without a trailing dot, endpoints keyed by host, path
// globs absolute (a trailing /** also matching the directory itself),
// denied globs and command names lower-cased, and tools.allowed defaulting
// to every tool.
package policy
