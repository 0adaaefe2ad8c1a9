# METADATA
# title: Tool calls
# description: |
#   Decides every tools/call before its handler runs.
#   Input: tool (name), registered (bool), arguments (object),
#   client {name, version}, protocol_version, request_id,
#   session: this session's earlier decisions, {history: [{tool, kind,
#   result}] (the last 32, oldest first; kind is the audit record's:
#   tool_call, validation, rate_limit, network, filesystem, command;
#   result allow, deny or error), counts {allow, deny, error} (every one
#   of the session's decisions, refusals past the audit budget included),
#   dropped (how many decisions history does not list: pushed out by
#   newer ones, or refusals past the budget, never listed; counts sum to
#   count(history) + dropped)}.
#   tool_definition {changed (bool), hash, pinned}: for a tool whose
#   definition comes from outside the binary (an upstream MCP server),
#   whether its name, description or schemas differ from the hash the
#   operator pinned (hashes empty for the binary's own tools).
#   Outputs: allow (bool), deny (set of reasons to refuse), reasons (deny
#   plus what the call lacks), decision {allow, reasons}.
#   User modules in this package tighten it with `deny contains reason if ...`.
# scope: package
package mcp.tools

default allow := false

# A call is allowed when it is positively permitted and nothing denies it.
allow if {
	input.registered == true
	permitted
	count(deny) == 0
}

# tools.allowed absent or ["*"] compiles to allow_all: no glob per call.
permitted if data.mcp.policy.tools.allow_all == true

# A glob with no delimiters: * spans the whole name, dots included.
permitted if {
	some pattern in data.mcp.policy.tools.allowed
	glob.match(pattern, null, input.tool)
}

deny contains sprintf("tool %q is denied by tools.denied pattern %q", [input.tool, pattern]) if {
	some pattern in data.mcp.policy.tools.denied
	glob.match(pattern, null, input.tool)
}

# Rug-pull protection: a tool whose definition changed since it was pinned
# is refused until the operator approves the new one.
deny contains sprintf(
	concat("", [
		"tool %q changed its definition (name, description or schemas) since it was pinned; ",
		"review the change (`mcp-secure tools diff %s`) and run `mcp-secure tools approve %s` to allow it",
	]),
	[input.tool, input.tool, input.tool],
) if {
	input.tool_definition.changed == true
}

# reasons explains a refusal; it is evaluated only when allow is not true.
reasons contains reason if some reason in deny

reasons contains sprintf("tool %q is not registered", [input.tool]) if not input.registered == true

reasons contains sprintf("tool %q is not in tools.allowed", [input.tool]) if not permitted

default decision := {"allow": false, "reasons": ["no policy decision"]}

decision := {"allow": allow, "reasons": sort(reasons)}
