# METADATA
# title: Audit masks
# description: |
#   Decides which parts of an audit record are erased or replaced before the
#   record is written, shaped after OPA's decision-log masking
#   (system.log.mask).
#   Input: the whole record as it would be written (kind, tool, client,
#   result, reasons, error, input, ...), after redaction and size caps.
#   Output: mask, a set of JSON pointers into the record to erase
#   ("/input/stdin") or objects {"op": "upsert", "path": pointer,
#   "value": v} that replace the value at the pointer. Only /input,
#   /reasons, /error, /tool and /client can be masked; the record lists
#   what was done under "erased" and "masked". If the rules fail, the
#   whole input is erased.
#   User modules add `mask contains ...` in this package.
# scope: package
package mcp.audit

# A command's standard input and environment are data the command was
# given, not the decision to run it.
mask contains "/input/stdin" if {
	input.kind == "command"
	"stdin" in object.keys(input.input)
}

mask contains "/input/env" if {
	input.kind == "command"
	"env" in object.keys(input.input)
}

# The content a writing tool is asked to write is kept only as its size:
# the path and the decision are the evidence, the file body is not.
mask contains {"op": "upsert", "path": "/input/arguments/content", "value": {"masked": true, "chars": count(content)}} if {
	input.kind in {"tool_call", "validation", "rate_limit"}
	is_string(input.tool)
	contains(lower(input.tool), "write")
	content := input.input.arguments.content
	is_string(content)
}
