# Rules over the session's history, offered as input.session:
#   history: [{tool, kind, result}], the session's last 32 decisions,
#            oldest first (kind: tool_call, validation, rate_limit,
#            network, filesystem or command; result: allow, deny, error)
#   counts:  {allow, deny, error}, every one of the session's decisions
#            (refusals past the audit budget, summarised in the log, too)
#   dropped: how many decisions history does not list
# A model that was refused a file read and then reaches for the web may be
# trying to carry out what it could not read: stop it for the session.
package mcp.tools

# Denials after which a session may only use discovery.
session_denial_budget := 3

# METADATA
# title: No web search after a denied file access
# description: Denies web_search in a session where a filesystem access was denied.
# scope: rule
deny contains "web_search is not allowed in a session where a file access was denied" if {
	input.tool == "web_search"
	some earlier in input.session.history
	earlier.kind == "filesystem"
	earlier.result == "deny"
}

# METADATA
# title: Denial budget
# description: After session_denial_budget denials, a session may only use discovery tools.
# scope: rule
deny contains sprintf("this session had %d denied requests: only search_tools and list_categories remain", [input.session.counts.deny]) if {
	input.session.counts.deny >= session_denial_budget
	not input.tool in {"search_tools", "list_categories"}
}
