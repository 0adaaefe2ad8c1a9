package mcp.tools_test

import data.mcp.tools

pol := {"allowed": ["*"], "denied": ["danger_*"]}

call(name) := {"tool": name, "registered": true, "arguments": {}}

test_allow_registered_tool if {
	tools.allow with input as call("search_tools") with data.mcp.policy.tools as pol
}

test_allow_name_with_dots if {
	tools.allow with input as call("a.b.c") with data.mcp.policy.tools as pol
}

test_deny_unregistered if {
	not tools.allow with input as {"tool": "rm_rf", "registered": false} with data.mcp.policy.tools as pol
	tools.decision.reasons == [`tool "rm_rf" is not registered`] with input as {"tool": "rm_rf", "registered": false}
		with data.mcp.policy.tools as pol
}

test_deny_missing_registered_flag if {
	not tools.allow with input as {"tool": "x"} with data.mcp.policy.tools as pol
}

test_deny_denied_glob if {
	d := tools.decision with input as call("danger_zone") with data.mcp.policy.tools as pol
	d.allow == false
	d.reasons == [`tool "danger_zone" is denied by tools.denied pattern "danger_*"`]
}

test_deny_not_in_allowed if {
	p := {"allowed": ["search_*"], "denied": []}
	d := tools.decision with input as call("web_search") with data.mcp.policy.tools as p
	d.reasons == [`tool "web_search" is not in tools.allowed`]
}

test_deny_wins_over_allowed if {
	p := {"allowed": ["web_search"], "denied": ["web_*"]}
	not tools.allow with input as call("web_search") with data.mcp.policy.tools as p
}

test_decision_allow_has_no_reasons if {
	tools.decision == {"allow": true, "reasons": []} with input as call("list_categories")
		with data.mcp.policy.tools as pol
}

test_allow_all_flag_skips_globs if {
	p := {"allow_all": true, "allowed": [], "denied": ["x_*"]}
	tools.allow with input as call("anything.at_all") with data.mcp.policy.tools as p
	not tools.allow with input as call("x_y") with data.mcp.policy.tools as p
}

changed_call(name) := object.union(call(name), {"tool_definition": {"changed": true, "hash": "b", "pinned": "a"}})

test_deny_changed_definition if {
	d := tools.decision with input as changed_call("docs__echo") with data.mcp.policy.tools as pol
	d.allow == false
	d.reasons == [concat("", [
		`tool "docs__echo" changed its definition (name, description or schemas) since it was pinned; `,
		"review the change (`mcp-secure tools diff docs__echo`) and run `mcp-secure tools approve docs__echo` to allow it",
	])]
}

test_allow_pinned_definition if {
	pinned := object.union(call("docs__echo"), {"tool_definition": {"changed": false, "hash": "a", "pinned": "a"}})
	tools.allow with input as pinned with data.mcp.policy.tools as pol
}
