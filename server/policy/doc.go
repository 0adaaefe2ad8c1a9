// Package policy loads the YAML security policy and compiles it into the
// data document the Rego modules read at data.mcp.policy.
//
// # Loading
//
// [Load] reads a file strictly: an unknown key, a value of the wrong type,
// a bad CIDR, a port outside 1-65535, a negative rate or an unset ${VAR} is
// an [Error] naming the file, the line and the key. ${VAR} and
// ${VAR:-default} expand in path-valued keys (filesystem paths, the audit
// log file, Rego module paths); a leading ~/ means the home directory. In
// path globs every expanded value is glob-escaped, so a home of
// /home/proj[1] means that directory and not /home/proj1. A path glob is
// absolute or starts with **/ (matching in any directory); a relative one
// is an error, never anchored to the policy file's directory. A trailing
// / means the directory and everything below it.
// [Default] returns the embedded default policy.
//
// # Defaults and warnings
//
// A top-level section the file leaves out gets its safe default: no
// network, no files, no commands; [Policy.Defaulted] lists them for
// `policy check`. [Policy.Warnings] runs the registered warners over the
// policy and the registered tool names: a tools.allowed or tools.denied
// pattern that matches no tool (names are case-sensitive) is one.
// [Policy.Errorf] locates a problem found later, such as a plugin's
// setting, at its key's line.
//
// # Compiling
//
// [Policy.Data] is the normalised document: CIDRs in canonical form, host
// names lower-cased without a trailing dot, endpoints keyed by host, path
// globs absolute (a trailing /** also matching the directory itself),
// denied globs and command names lower-cased, and tools.allowed defaulting
// to every tool.
package policy
