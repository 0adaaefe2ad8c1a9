package mcp.filesystem_test

import data.mcp.filesystem

pol := {
	"allowed_paths": ["/home/u/ws/**", "/home/u/ws", "/tmp/*.txt"],
	"denied_paths": ["**/.env", "**/.ssh/**", "**/secrets/**", "**/*.pem"],
}

op(path, operation) := {"path": path, "operation": operation, "tool": "t"}

test_allow_inside if {
	filesystem.allow with input as op("/home/u/ws/a/b/c.go", "read") with data.mcp.policy.filesystem as pol
}

test_allow_root_dir_itself if {
	filesystem.allow with input as op("/home/u/ws", "list") with data.mcp.policy.filesystem as pol
}

test_single_star_stays_in_segment if {
	filesystem.allow with input as op("/tmp/a.txt", "read") with data.mcp.policy.filesystem as pol
	not filesystem.allow with input as op("/tmp/x/a.txt", "read") with data.mcp.policy.filesystem as pol
}

test_deny_outside if {
	d := filesystem.decision with input as op("/etc/passwd", "read") with data.mcp.policy.filesystem as pol
	d.reasons == [`path "/etc/passwd" is not under filesystem.allowed_paths`]
}

test_deny_sibling_prefix if {
	not filesystem.allow with input as op("/home/u/ws-evil/x", "read") with data.mcp.policy.filesystem as pol
}

test_deny_wins if {
	d := filesystem.decision with input as op("/home/u/ws/app/.env", "read") with data.mcp.policy.filesystem as pol
	d.reasons == [`path "/home/u/ws/app/.env" matches filesystem.denied_paths pattern "**/.env"`]
}

test_deny_case_insensitive if {
	not filesystem.allow with input as op("/home/u/ws/.SSH/id_rsa", "read") with data.mcp.policy.filesystem as pol
	not filesystem.allow with input as op("/home/u/ws/Secrets/x", "read") with data.mcp.policy.filesystem as pol
	not filesystem.allow with input as op("/home/u/ws/KEY.PEM", "read") with data.mcp.policy.filesystem as pol
}

test_deny_relative if {
	d := filesystem.decision with input as op("ws/a", "read") with data.mcp.policy.filesystem as pol
	d.reasons == [`path "ws/a" is not absolute`]
}

test_deny_unknown_operation if {
	d := filesystem.decision with input as op("/home/u/ws/a", "chmod") with data.mcp.policy.filesystem as pol
	d.reasons == [`unknown operation "chmod"`]
}

test_empty_allowed_paths_allow_nothing if {
	p := {"allowed_paths": [], "denied_paths": []}
	not filesystem.allow with input as op("/home/u/ws/a", "read") with data.mcp.policy.filesystem as p
}
