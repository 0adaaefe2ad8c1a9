# Refuses add_bug and update_bug when the text would store a credential:
# bug trackers are read by many, and a secret in a title outlives its
# rotation. The policy sees the arguments before the audit log redacts
# them, so the shapes below match the real values.
package mcp.tools

# Credential shapes: AWS access key ids, GitHub and Slack tokens, private
# key blocks, JWTs, and "password=..." style assignments.
bug_secret_patterns := {
	"an AWS access key id": `AKIA[0-9A-Z]{16}`,
	"a GitHub token": `gh[pousr]_[A-Za-z0-9]{36,}`,
	"a Slack token": `xox[abprs]-[A-Za-z0-9-]{10,}`,
	"a private key": `-----BEGIN [A-Z ]*PRIVATE KEY-----`,
	"a JSON Web Token": `eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`,
	"a password": `(?i)(password|passwd|pwd|secret|api[_-]?key)\s*[:=]\s*\S{6,}`,
}

bug_text_fields := {"title", "description", "note"}

# METADATA
# title: No secrets in bug reports
# description: Denies add_bug and update_bug whose title, description or note holds a credential.
# scope: rule
deny contains sprintf("%s of %s looks like it holds %s: remove the secret (and rotate it)", [field, input.tool, what]) if {
	input.tool in {"add_bug", "update_bug"}
	some field in bug_text_fields
	text := input.arguments[field]
	is_string(text)
	some what, pattern in bug_secret_patterns
	regex.match(pattern, text)
}
