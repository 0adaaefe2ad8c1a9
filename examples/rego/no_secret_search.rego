# An example user module. Named in a policy's rego.modules, it is compiled
# into package mcp.tools next to the built-in rules, so its METADATA is
# scoped to its rule, not the package.
package mcp.tools

credential_words := {"password", "passwd", "secret", "api key", "apikey", "private key", "token"}

# METADATA
# title: No credential hunting
# description: Denies any search whose query hunts for credentials.
# scope: rule
deny contains "searching for credentials is not allowed" if {
	input.tool in {"search_tools", "web_search", "search_bugs_global"}
	query := lower(input.arguments.query)
	some word in credential_words
	contains(query, word)
}
