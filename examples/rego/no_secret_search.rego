# An example user module. Named in a policy's rego.modules, it is compiled
# into package mcp.tools next to the built-in rules, so its METADATA is
# scoped to its rule, not the package.
package mcp.tools

# One regular expression instead of a loop over words: a single built-in
# call per decision (OPA caches the compiled pattern).
credential_pattern := `password|passwd|secret|api ?key|private key|token`

# METADATA
# title: No credential hunting
# description: Denies any search whose query hunts for credentials.
# scope: rule
deny contains "searching for credentials is not allowed" if {
	input.tool in {"search_tools", "web_search", "search_bugs_global"}
	regex.match(credential_pattern, lower(input.arguments.query))
}
