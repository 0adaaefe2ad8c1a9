# METADATA
# title: Command execution
# description: |
#   Decides every process a tool starts (argv only, never a shell).
#   Input: argv (array, argv[0] as given), executable (absolute path it
#   resolved to), name (base name of executable), resolved_name (base name
#   after following symlinks), cwd, tool.
#   Names compare case-insensitively.
#   Outputs: allow, deny (reasons to refuse; user modules add to it),
#   reasons (deny plus what the command lacks), decision {allow, reasons}.
# scope: package
package mcp.commands

policy := data.mcp.policy.commands

default allow := false

allow if {
	permitted
	count(deny) == 0
}

permitted if {
	startswith(input.executable, "/")
	count(input.argv) > 0
}

names contains lower(input.name) if input.name != ""

names contains lower(input.resolved_name) if input.resolved_name != ""

reasons contains "the executable is not an absolute path" if not startswith(input.executable, "/")

reasons contains "argv is empty" if not count(input.argv) > 0

deny contains sprintf("command %q is in commands.blocked", [name]) if {
	some name in names
	name in policy.blocked
}

# With an allowlist, both the name the executable was found under and the
# name of the file it really is must be listed (git -> /bin/bash is not git).
deny contains sprintf("command %q is not in commands.allowed", [name]) if {
	policy.allowed != null
	some name in names
	not name in policy.allowed
}

reasons contains reason if some reason in deny

default decision := {"allow": false, "reasons": ["no policy decision"]}

decision := {"allow": allow, "reasons": sort(reasons)}
