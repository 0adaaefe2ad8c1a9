package examples.argument_limits_test

import data.mcp.tools

call(tool, args) := {"tool": tool, "registered": true, "arguments": args}

test_allows_within_limits if {
	tools.allow with input as call("web_search", {"query": "opa", "max_results": 5})
}

test_denies_too_many_results if {
	d := tools.decision with input as call("web_search", {"query": "opa", "max_results": 20})
	d.reasons == ["web_search: max_results is 20, above the limit of 5"]
}

test_denies_long_query if {
	d := tools.decision with input as call("web_search", {"query": concat("", array.slice(split(sprintf("%0201d", [0]), ""), 0, 201))})
	d.reasons == ["web_search: query is 201 characters long, above the limit of 200"]
}

test_denies_too_many_tags if {
	d := tools.decision with input as call("add_bug", {"title": "t", "tags": ["a", "b", "c", "d", "e", "f"]})
	d.reasons == ["add_bug: tags has 6 items, above the limit of 5"]
}

test_reports_every_limit if {
	d := tools.decision with input as call("list_bugs", {"limit": 51})
	d.reasons == ["list_bugs: limit is 51, above the limit of 50"]
}

test_absent_arguments_are_fine if {
	tools.allow with input as call("list_bugs", {})
}

test_other_tools_unlimited if {
	tools.allow with input as call("get_bug", {"bug_id": "BUG-001"})
}
