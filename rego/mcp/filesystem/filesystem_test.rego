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

own := [
	{"path": "/home/u/ws/logs", "what": "audit log directory", "below": true, "prefix": false},
	{"path": "/home/u/ws/policy.yaml", "what": "policy file", "below": false, "prefix": false},
	{"path": "/home/u/ws/db/bugs.db", "what": "bug database", "below": false, "prefix": true},
]

test_server_files_denied if {
	d := filesystem.decision with input as op("/home/u/ws/logs/audit.log", "write")
		with data.mcp.policy.filesystem as pol
		with data.mcp.policy.server_files as own
	d.allow == false
	d.reasons == [`path "/home/u/ws/logs/audit.log" is the server's audit log directory: no tool may touch it`]
	not filesystem.allow with input as op("/home/u/ws/logs", "delete") with data.mcp.policy.filesystem as pol with data.mcp.policy.server_files as own
	not filesystem.allow with input as op("/home/u/ws/POLICY.yaml", "read") with data.mcp.policy.filesystem as pol with data.mcp.policy.server_files as own
	not filesystem.allow with input as op("/home/u/ws/db/bugs.db-wal", "read") with data.mcp.policy.filesystem as pol with data.mcp.policy.server_files as own
}

test_server_files_neighbours_allowed if {
	filesystem.allow with input as op("/home/u/ws/logs2/x", "read") with data.mcp.policy.filesystem as pol with data.mcp.policy.server_files as own
	filesystem.allow with input as op("/home/u/ws/policy.yaml.bak", "read") with data.mcp.policy.filesystem as pol with data.mcp.policy.server_files as own
	filesystem.allow with input as op("/home/u/ws/db/other.db", "read") with data.mcp.policy.filesystem as pol with data.mcp.policy.server_files as own
}
