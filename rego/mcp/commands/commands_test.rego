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

prog(exe, real, extra) := object.union(
	{
		"executable": exe, "real": real, "name": base(exe), "resolved_name": base(real),
		"dev": 1, "inode": 2, "untrusted": [], "same_file_as": [], "trampoline": false,
	},
	extra,
)

base(path) := parts[count(parts) - 1] if parts := split(path, "/")

cmd(p, interps) := object.union(p, {"argv": [p.name], "cwd": "/ws", "tool": "t", "interpreters": interps})

test_deny_untrusted_executable if {
	p := {"blocked": [], "allowed": ["cat", "cp", "ls"], "allowed_paths": []}
	exe := prog("/ws/cat", "/ws/cat", {"untrusted": ["/ws/cat is inside filesystem.allowed_paths (/ws): a tool could have written it"]})
	d := commands.decision with input as cmd(exe, []) with data.mcp.policy.commands as p
	not d.allow
	"/ws/cat is inside filesystem.allowed_paths (/ws): a tool could have written it" in d.reasons
}

test_deny_interpreter_not_allowed if {
	p := {"blocked": [], "allowed": [], "allowed_paths": ["/opt/tools/run"]}
	exe := prog("/opt/tools/run", "/opt/tools/run", {})
	sh := prog("/bin/sh", "/usr/bin/dash", {"role": "interpreter"})
	d := commands.decision with input as cmd(exe, [sh]) with data.mcp.policy.commands as p
	d.reasons == [
		`interpreter "dash" (of a #! script) is not in commands.allowed`,
		`interpreter "sh" (of a #! script) is not in commands.allowed`,
	]
}

test_allow_interpreter_listed if {
	p := {"blocked": [], "allowed": ["sh", "dash"], "allowed_paths": ["/opt/tools/run"]}
	exe := prog("/opt/tools/run", "/opt/tools/run", {})
	sh := prog("/bin/sh", "/usr/bin/dash", {"role": "interpreter"})
	commands.allow with input as cmd(exe, [sh]) with data.mcp.policy.commands as p
}

test_env_trampoline_needs_only_not_blocked if {
	p := {"blocked": [], "allowed": ["python3"], "allowed_paths": ["/opt/tools/run"]}
	exe := prog("/opt/tools/run", "/opt/tools/run", {})
	env := prog("/usr/bin/env", "/usr/bin/env", {"role": "interpreter", "trampoline": true})
	py := prog("/usr/bin/python3", "/usr/bin/python3", {"role": "interpreter"})
	commands.allow with input as cmd(exe, [env, py]) with data.mcp.policy.commands as p
	not commands.allow with input as cmd(exe, [env, py]) with data.mcp.policy.commands as object.union(p, {"blocked": ["env"]})
}

test_deny_hard_link_of_blocked if {
	exe := prog("/usr/bin/perl5.36.0", "/usr/bin/perl5.36.0", {"same_file_as": ["perl"]})
	d := commands.decision with input as cmd(exe, []) with data.mcp.policy.commands as {"blocked": ["perl"], "allowed": null}
	d.reasons == [`/usr/bin/perl5.36.0 is the same file as "perl" in commands.blocked`]
}

test_allow_by_identity if {
	p := {"blocked": [], "allowed": [], "allowed_paths": ["/usr/bin/git"]}
	exe := prog("/opt/git-link", "/opt/git-link", {"same_file_as": ["/usr/bin/git"]})
	commands.allow with input as cmd(exe, []) with data.mcp.policy.commands as p
}

test_bare_name_only_in_system_dirs if {
	p := {"blocked": [], "allowed": ["tool"], "allowed_paths": []}
	commands.allow with input as cmd(prog("/usr/local/bin/tool", "/usr/local/bin/tool", {}), []) with data.mcp.policy.commands as p
	d := commands.decision with input as cmd(prog("/opt/x/tool", "/opt/x/tool", {}), []) with data.mcp.policy.commands as p
	not d.allow
	startswith(d.reasons[0], `command "tool" at /opt/x/tool is not in a system directory`)
}

test_absolute_entry_allows_that_file if {
	p := {"blocked": [], "allowed": [], "allowed_paths": ["/opt/x/tool"]}
	commands.allow with input as cmd(prog("/opt/x/tool", "/opt/x/tool", {}), []) with data.mcp.policy.commands as p
	not commands.allow with input as cmd(prog("/opt/y/tool", "/opt/y/tool", {}), []) with data.mcp.policy.commands as p
}
