# METADATA
# title: Command execution
# description: |
#   Decides every process a tool starts (argv only, never a shell).
#   Input:
#     argv (array, argv[0] as given), cwd, tool, request_id;
#     the executable argv[0] names, as a program (below);
#     interpreters: the programs its "#!" line runs under, in order
#     (role "interpreter"; "#!/usr/bin/env X" gives env with
#     trampoline true, then X).
#   A program is:
#     executable (absolute path it was found at), real (the file behind
#     its symlinks), name and resolved_name (their base names), dev and
#     inode (of real), untrusted (why a tool could have written or
#     swapped it: inside filesystem.allowed_paths, a group- or
#     other-writable file or directory above it, a foreign owner; empty
#     when trusted), same_file_as (commands.allowed and commands.blocked
#     entries, as in data, that are this very file: a hard link),
#     trampoline (bool), role ("interpreter" for interpreters).
#   Names compare case-insensitively. A bare name in commands.allowed
#   allows that name in the system directories of SafePath; an absolute
#   path allows that file. Every program of the chain must be allowed
#   (a trampoline only needs not to be blocked), trusted, and not
#   blocked by name or by identity.
#   Outputs: allow, deny (reasons to refuse; user modules add to it),
#   reasons (deny plus what the command lacks), decision {allow, reasons}.
# scope: package
package mcp.commands

policy := data.mcp.policy.commands

# The directories of guard.SafePath.
system_dirs := {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

default allow := false

allow if {
	permitted
	count(deny) == 0
}

permitted if {
	startswith(input.executable, "/")
	count(input.argv) > 0
}

reasons contains "the executable is not an absolute path" if not startswith(input.executable, "/")

reasons contains "argv is empty" if not count(input.argv) > 0

programs contains input

programs contains p if some p in input.interpreters

names(p) := {lower(n) | some n in [p.name, p.resolved_name]; n != ""}

what(p) := sprintf("interpreter %q", [lower(p.resolved_name)]) if p.role == "interpreter"

else := sprintf("command %q", [lower(p.name)])

dir_of(path) := concat("/", array.slice(parts, 0, count(parts) - 1)) if parts := split(path, "/")

in_system_dir(p) if dir_of(p.executable) in system_dirs

deny contains sprintf("command %q is in commands.blocked", [name]) if {
	some p in programs
	some name in names(p)
	name in policy.blocked
}

deny contains sprintf("%s is the same file as %q in commands.blocked", [p.real, entry]) if {
	some p in programs
	some entry in p.same_file_as
	entry in policy.blocked
}

deny contains reason if {
	some p in programs
	some reason in p.untrusted
}

# With an allowlist, every program that runs must be allowed: by name
# (both the name it was found under and the name of the file it really
# is: git -> /bin/bash is not git) in a system directory, by absolute
# path, or by being the very file an entry names.
allowed_by_name(p) if {
	in_system_dir(p)
	every name in names(p) {
		name in policy.allowed
	}
}

allowed_by_path(p) if p.executable in policy.allowed_paths

allowed_by_path(p) if p.real in policy.allowed_paths

allowed_by_identity(p) if {
	some entry in p.same_file_as
	entry in allowed_entries
}

allowed_entries contains e if some e in policy.allowed

allowed_entries contains e if some e in policy.allowed_paths

allowed_program(p) if allowed_by_name(p)

allowed_program(p) if allowed_by_path(p)

allowed_program(p) if allowed_by_identity(p)

deny contains sprintf("command %q is not in commands.allowed", [name]) if {
	policy.allowed != null
	some p in programs
	not p.trampoline
	not p.role
	not allowed_program(p)
	some name in names(p)
	not name in policy.allowed
}

deny contains sprintf("interpreter %q (of a #! script) is not in commands.allowed", [name]) if {
	policy.allowed != null
	some p in programs
	p.role == "interpreter"
	not p.trampoline
	not allowed_program(p)
	some name in names(p)
	not name in policy.allowed
}

deny contains sprintf("%s at %s is not in a system directory (%s); list its absolute path in commands.allowed", [what(p), p.executable, concat(":", sort(system_dirs))]) if {
	policy.allowed != null
	some p in programs
	not p.trampoline
	not allowed_program(p)
	every name in names(p) {
		name in policy.allowed
	}
}

reasons contains reason if some reason in deny

default decision := {"allow": false, "reasons": ["no policy decision"]}

decision := {"allow": allow, "reasons": sort(reasons)}
