package mcp.audit_test

import data.mcp.audit

test_command_stdin_and_env_erased if {
	audit.mask == {"/input/stdin", "/input/env"} with input as {
		"kind": "command",
		"input": {"argv": ["cat"], "stdin": "data", "env": {"A": "1"}},
	}
}

test_command_without_stdin_untouched if {
	count(audit.mask) == 0 with input as {"kind": "command", "input": {"argv": ["ls"]}}
}

test_write_content_kept_as_size if {
	audit.mask == {{"op": "upsert", "path": "/input/arguments/content", "value": {"masked": true, "chars": 5}}} with input as {
		"kind": "tool_call",
		"tool": "write_file",
		"input": {"arguments": {"path": "/w/a", "content": "hello"}},
	}
}

test_other_tools_content_untouched if {
	count(audit.mask) == 0 with input as {
		"kind": "tool_call",
		"tool": "search",
		"input": {"arguments": {"content": "hello"}},
	}
}

test_truncated_values_do_not_fail if {
	count(audit.mask) == 0 with input as {
		"kind": "validation",
		"tool": {"truncated": true, "bytes": 1048576, "sha256": "00"},
		"input": {"arguments": {"content": {"truncated": true, "bytes": 9, "sha256": "00"}}},
	}
}

test_filesystem_records_untouched if {
	count(audit.mask) == 0 with input as {"kind": "filesystem", "input": {"path": "/w/a", "operation": "write"}}
}
