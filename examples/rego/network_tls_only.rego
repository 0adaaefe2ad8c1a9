# An example user module, compiled into package mcp.network next to the
# built-in rules.
package mcp.network

# METADATA
# title: TLS only for web search
# description: web_search may connect only to port 443, whatever the ranges allow.
# scope: rule
deny contains sprintf("web_search may only use port 443, not %d", [input.port]) if {
	input.tool == "web_search"
	input.phase == "dial"
	input.port != 443
}
