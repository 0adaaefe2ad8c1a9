# METADATA
# title: Filesystem access
# description: |
#   Decides every path a tool opens, lists, creates or deletes.
#   Input: path (absolute, cleaned), operation (read, write, list, create,
#   delete, stat), tool, request_id.
#   Globs are path-aware: * stays within one segment, ** crosses segments.
#   Denied patterns win and match case-insensitively.
#   data.mcp.policy.server_files lists the server's own files, always
#   denied.
#   Outputs: allow, deny (reasons to refuse; user modules add to it),
#   reasons (deny plus what the access lacks), decision {allow, reasons}.
# scope: package
package mcp.filesystem

policy := data.mcp.policy.filesystem

operations := {"read", "write", "list", "create", "delete", "stat"}

default allow := false

allow if {
	permitted
	input.operation in operations
	count(deny) == 0
}

permitted if {
	absolute
	some pattern in policy.allowed_paths
	glob.match(pattern, ["/"], input.path)
}

absolute if startswith(input.path, "/")

reasons contains sprintf("path %q is not absolute", [input.path]) if not absolute

reasons contains sprintf("unknown operation %q", [input.operation]) if not input.operation in operations

reasons contains sprintf("path %q is not under filesystem.allowed_paths", [input.path]) if {
	absolute
	not permitted
}

deny contains sprintf("path %q matches filesystem.denied_paths pattern %q", [input.path, pattern]) if {
	some pattern in policy.denied_paths
	glob.match(pattern, ["/"], lower(input.path))
}

# The server's own files (audit log, policy, Rego modules, plugin data)
# are never a tool's, whatever filesystem.allowed_paths says: the server
# lists them in data.mcp.policy.server_files, which no YAML key sets.
deny contains sprintf("path %q is the server's %s: no tool may touch it", [input.path, f.what]) if {
	some f in data.mcp.policy.server_files
	own_file(f)
}

own_file(f) if lower(input.path) == lower(f.path)

own_file(f) if {
	f.below == true
	startswith(lower(input.path), concat("", [lower(f.path), "/"]))
}

own_file(f) if {
	f.prefix == true
	startswith(lower(input.path), lower(f.path))
}

reasons contains reason if some reason in deny

default decision := {"allow": false, "reasons": ["no policy decision"]}

decision := {"allow": allow, "reasons": sort(reasons)}
