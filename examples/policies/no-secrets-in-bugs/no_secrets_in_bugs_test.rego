package examples.no_secrets_in_bugs_test

import data.mcp.tools

bug(tool, args) := {"tool": tool, "registered": true, "arguments": args, "client": {"name": "test", "version": "1"}}

test_denies_aws_key_in_title if {
	d := tools.decision with input as bug("add_bug", {"title": "deploy fails with AKIAIOSFODNN7EXAMPLE"})
	d.allow == false
	d.reasons == ["title of add_bug looks like it holds an AWS access key id: remove the secret (and rotate it)"]
}

test_denies_password_in_description if {
	d := tools.decision with input as bug("add_bug", {"title": "login broken", "description": "tried with password: hunter22!"})
	d.allow == false
	d.reasons == ["description of add_bug looks like it holds a password: remove the secret (and rotate it)"]
}

test_denies_private_key_in_note if {
	not tools.allow with input as bug("update_bug", {"bug_id": "BUG-001", "note": "key: -----BEGIN OPENSSH PRIVATE KEY-----"})
}

test_denies_github_token if {
	not tools.allow with input as bug("add_bug", {"title": "ci token ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked"})
}

test_allows_ordinary_bug if {
	tools.allow with input as bug("add_bug", {"title": "password reset email never arrives", "description": "steps: ..."})
}

test_ignores_other_tools if {
	tools.allow with input as bug("get_bug", {"bug_id": "AKIAIOSFODNN7EXAMPLE"})
}
