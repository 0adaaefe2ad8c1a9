# Per-argument limits: numbers at most a maximum, strings at most a
# length, lists at most a count. The tools' schemas say what is valid;
# these say what this team allows.
package mcp.tools

argument_limits := {
	"web_search": {"max_results": {"max": 5}, "query": {"max_length": 200}},
	"list_bugs": {"limit": {"max": 50}},
	"search_bugs_global": {"limit": {"max": 20}, "query": {"max_length": 100}},
	"add_bug": {"title": {"max_length": 120}, "description": {"max_length": 4000}, "tags": {"max_items": 5}},
}

# METADATA
# title: Argument limits
# description: Denies a call whose argument exceeds its limit in argument_limits.
# scope: rule
deny contains sprintf("%s: %s is %v, above the limit of %v", [input.tool, name, value, limit.max]) if {
	some name, limit in argument_limits[input.tool]
	value := input.arguments[name]
	is_number(value)
	value > limit.max
}

deny contains sprintf("%s: %s is %d characters long, above the limit of %d", [input.tool, name, count(value), limit.max_length]) if {
	some name, limit in argument_limits[input.tool]
	value := input.arguments[name]
	is_string(value)
	count(value) > limit.max_length
}

deny contains sprintf("%s: %s has %d items, above the limit of %d", [input.tool, name, count(value), limit.max_items]) if {
	some name, limit in argument_limits[input.tool]
	value := input.arguments[name]
	is_array(value)
	count(value) > limit.max_items
}
