# One tool for certain clients only. The client name is what the client
# says it is (clientInfo.name in the MCP handshake): a label for rules that
# keeps honest clients apart, not authentication.
package mcp.tools

client_only_tools := {"search_bugs_global": {"claude-code", "cursor"}}

# METADATA
# title: Tools for certain clients
# description: Denies a tool in client_only_tools to every client not listed for it.
# scope: rule
deny contains sprintf("%s is only for the clients %s, not %q", [input.tool, concat(", ", sort(clients)), client]) if {
	clients := client_only_tools[input.tool]

	# A client that sent no name is no listed client.
	client := object.get(input, ["client", "name"], "")
	not client in clients
}
