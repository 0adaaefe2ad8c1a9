package examples.client_only_tool_test

import data.mcp.tools

call(tool, client) := {"tool": tool, "registered": true, "arguments": {}, "client": {"name": client, "version": "1.0"}}

test_allows_listed_client if {
	tools.allow with input as call("search_bugs_global", "claude-code")
}

test_denies_other_client if {
	d := tools.decision with input as call("search_bugs_global", "claude-ai")
	d.reasons == [`search_bugs_global is only for the clients claude-code, cursor, not "claude-ai"`]
}

test_denies_client_without_name if {
	not tools.allow with input as {"tool": "search_bugs_global", "registered": true, "arguments": {}}
}

test_names_are_exact if {
	not tools.allow with input as call("search_bugs_global", "Claude-Code")
}

test_other_tools_for_everyone if {
	tools.allow with input as call("list_bugs", "claude-ai")
}
