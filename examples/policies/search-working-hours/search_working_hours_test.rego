package examples.search_working_hours_test

import data.mcp.tools

search := {"tool": "web_search", "registered": true, "arguments": {"query": "rego"}}

# 2026-12-02 is a Wednesday; Berlin is UTC+1 in December.
wednesday_10_berlin := time.parse_rfc3339_ns("2026-12-02T09:00:00Z")

wednesday_18_berlin := time.parse_rfc3339_ns("2026-12-02T17:00:00Z")

wednesday_0859_berlin := time.parse_rfc3339_ns("2026-12-02T07:59:00Z")

saturday_noon_berlin := time.parse_rfc3339_ns("2026-12-05T11:00:00Z")

test_allows_search_in_working_hours if {
	tools.allow with input as search with time.now_ns as wednesday_10_berlin
}

test_denies_search_at_closing_time if {
	d := tools.decision with input as search with time.now_ns as wednesday_18_berlin
	d.reasons == ["web_search is allowed 9:00-18:00 Europe/Berlin, Monday to Friday (now Wednesday 18:00)"]
}

test_denies_search_before_nine_berlin_time if {
	# 07:59 UTC is 08:59 in Berlin: the zone, not UTC, decides.
	not tools.allow with input as search with time.now_ns as wednesday_0859_berlin
}

test_denies_search_on_saturday if {
	not tools.allow with input as search with time.now_ns as saturday_noon_berlin
}

test_other_tools_any_time if {
	tools.allow with input as {"tool": "list_bugs", "registered": true, "arguments": {}}
		with time.now_ns as saturday_noon_berlin
}
