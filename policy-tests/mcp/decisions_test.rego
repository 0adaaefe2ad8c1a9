# Runs every decision case in policy-tests/decisions against the built-in
# modules (and any user modules loaded with them).
package mcp.decisions_test

import data.decisions

points := ["tools", "network", "filesystem", "commands"]

# failures holds "<point>/<case>: <what differed>" for every case whose
# decision differs from the expectation.
failures contains sprintf("%s/%s: got %v", [point, c.name, d]) if {
	some point in points
	some c in decisions[point]
	d := data.mcp[point].decision with input as c.input with data.mcp.policy as c.policy
	not matches(d, c)
}

matches(d, c) if {
	d.allow == c.allow
	not c.reasons
}

matches(d, c) if {
	d.allow == c.allow
	d.reasons == c.reasons
}

test_every_decision_case if {
	count(failures) == 0
}

test_enough_cases_per_point if {
	every point in points {
		count(decisions[point]) >= 6
	}
}
