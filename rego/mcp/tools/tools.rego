# METADATA
# title: Tool calls
# description: |
#   Decides every tools/call before its handler runs.
#   Input: tool (name), registered (bool), arguments (object),
#   client {name, version}, protocol_version, request_id.
#   Outputs: allow (bool), deny (set of reasons), decision {allow, reasons}.
#   User modules in this package tighten it with `deny contains reason if ...`.
# scope: package
package mcp.tools

policy := data.mcp.policy.tools

default allow := false

allow if {
	input.registered == true
	permitted
	count(deny) == 0
}

# A glob with no delimiters: * spans the whole name, dots included.
permitted if {
	some pattern in policy.allowed
	glob.match(pattern, null, input.tool)
}

deny contains sprintf("tool %q is not registered", [input.tool]) if not input.registered == true

deny contains sprintf("tool %q is not in tools.allowed", [input.tool]) if not permitted

deny contains sprintf("tool %q is denied by tools.denied pattern %q", [input.tool, pattern]) if {
	some pattern in policy.denied
	glob.match(pattern, null, input.tool)
}

default decision := {"allow": false, "reasons": ["no policy decision"]}

decision := {"allow": allow, "reasons": sort(deny)}
