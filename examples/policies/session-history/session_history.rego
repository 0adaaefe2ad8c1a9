# Rules over the session's history, offered as input.session:
#   calls:  [{tool, allow, point}], the session's earlier decisions, newest
#           last (point: tools, network, filesystem or commands)
#   denied: how many of them were denied
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
	some earlier in input.session.calls
	earlier.point == "filesystem"
	earlier.allow == false
}

# METADATA
# title: Denial budget
# description: After session_denial_budget denials, a session may only use discovery tools.
# scope: rule
deny contains sprintf("this session had %d denied requests: only search_tools and list_categories remain", [input.session.denied]) if {
	input.session.denied >= session_denial_budget
	not input.tool in {"search_tools", "list_categories"}
}
