package examples.no_secret_search_test

import data.mcp.tools

example_policy := {"allowed": ["*"], "denied": []}

search(tool, query) := {"tool": tool, "registered": true, "arguments": {"query": query}}

test_example_denies_credential_search if {
	d := tools.decision with input as search("web_search", "leaked AWS Secret keys")
		with data.mcp.policy.tools as example_policy
	d.allow == false
	d.reasons == ["searching for credentials is not allowed"]
}

test_example_allows_other_searches if {
	tools.allow with input as search("web_search", "golang generics") with data.mcp.policy.tools as example_policy
}

test_example_ignores_other_tools if {
	tools.allow with input as search("add_bug", "password reset is broken") with data.mcp.policy.tools as example_policy
}
