package mcp.commands_test

import data.mcp.commands

pol := {"blocked": ["curl", "nc", "netcat"], "allowed": null}

run(exe, name, resolved) := {
	"argv": [name, "-x"], "executable": exe, "name": name,
	"resolved_name": resolved, "cwd": "/ws", "tool": "t",
}

test_allow_plain if {
	commands.allow with input as run("/usr/bin/git", "git", "git") with data.mcp.policy.commands as pol
}

test_deny_blocked if {
	d := commands.decision with input as run("/usr/bin/curl", "curl", "curl") with data.mcp.policy.commands as pol
	d.reasons == [`command "curl" is in commands.blocked`]
}

test_deny_blocked_case_insensitive if {
	not commands.allow with input as run("/opt/CURL", "CURL", "CURL") with data.mcp.policy.commands as pol
}

test_deny_symlink_to_blocked if {
	d := commands.decision with input as run("/usr/bin/nc", "nc", "netcat") with data.mcp.policy.commands as pol
	d.reasons == [`command "nc" is in commands.blocked`, `command "netcat" is in commands.blocked`]
}

test_deny_renamed_blocked_binary if {
	not commands.allow with input as run("/tmp/innocent", "innocent", "curl") with data.mcp.policy.commands as pol
}

test_allowlist if {
	p := {"blocked": [], "allowed": ["git", "go"]}
	commands.allow with input as run("/usr/bin/go", "go", "go") with data.mcp.policy.commands as p
	d := commands.decision with input as run("/usr/bin/make", "make", "make") with data.mcp.policy.commands as p
	d.reasons == [`command "make" is not in commands.allowed`]
}

test_empty_allowlist_allows_nothing if {
	p := {"blocked": [], "allowed": []}
	not commands.allow with input as run("/usr/bin/git", "git", "git") with data.mcp.policy.commands as p
}

test_deny_relative_executable if {
	d := commands.decision with input as run("git", "git", "git") with data.mcp.policy.commands as pol
	d.reasons == ["the executable is not an absolute path"]
}

test_deny_empty_argv if {
	inp := object.union(run("/usr/bin/git", "git", "git"), {"argv": []})
	d := commands.decision with input as inp with data.mcp.policy.commands as pol
	d.reasons == ["argv is empty"]
}

test_allowlist_checks_the_real_file if {
	p := {"blocked": [], "allowed": ["git"]}
	d := commands.decision with input as run("/ws/git", "git", "bash") with data.mcp.policy.commands as p
	d.reasons == [`command "bash" is not in commands.allowed`]
}
