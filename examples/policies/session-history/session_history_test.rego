package examples.session_history_test

import data.mcp.tools

call(tool, history) := {
	"tool": tool, "registered": true, "arguments": {"query": "q"},
	"session": {
		"history": history,
		"counts": {r: n | some r in ["allow", "deny", "error"]; n := count([e | some e in history; e.result == r])},
		"dropped": 0,
	},
}

read_denied := {"tool": "add_bug", "kind": "filesystem", "result": "deny"}

read_allowed := {"tool": "list_bugs", "kind": "filesystem", "result": "allow"}

tool_denied := {"tool": "add_bug", "kind": "tool_call", "result": "deny"}

test_allows_search_in_clean_session if {
	tools.allow with input as call("web_search", [read_allowed])
}

test_denies_search_after_denied_read if {
	d := tools.decision with input as call("web_search", [read_allowed, read_denied, read_allowed])
	d.reasons == ["web_search is not allowed in a session where a file access was denied"]
}

test_other_denials_do_not_block_search if {
	tools.allow with input as call("web_search", [tool_denied])
}

test_denial_budget if {
	d := tools.decision with input as call("list_bugs", [tool_denied, tool_denied, tool_denied])
	d.reasons == ["this session had 3 denied requests: only search_tools and list_categories remain"]
}

test_discovery_stays_open if {
	tools.allow with input as call("search_tools", [tool_denied, tool_denied, tool_denied, read_denied])
}

test_no_session_no_rule if {
	tools.allow with input as {"tool": "web_search", "registered": true, "arguments": {"query": "q"}}
}
