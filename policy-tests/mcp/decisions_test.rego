# Runs the decision cases in policy-tests/decisions against the built-in
# modules (and any user modules loaded with them): cases_test.rego holds
# one test per case.
package mcp.decisions_test

import data.decisions

points := ["tools", "network", "filesystem", "commands"]

# case_holds is true when the decision case called name, of point, is
# decided as it expects. Each case is a test of its own
# (cases_test.rego, generated from policy-tests/decisions).
case_holds(point, name) if {
	some c in decisions[point]
	c.name == name
	d := data.mcp[point].decision with input as c.input with data.mcp.policy as decisions.compiled[point][name]
	matches(d, c)
}

matches(d, c) if {
	d.allow == c.allow
	not c.reasons
}

matches(d, c) if {
	d.allow == c.allow
	d.reasons == c.reasons
}

test_enough_cases_per_point if {
	every point in points {
		count(decisions[point]) >= 6
	}
}
