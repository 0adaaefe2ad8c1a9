//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// coverServerFiles widens e's policy so that filesystem.allowed_paths
// holds the server's own files (the policy, the audit log and its
// directory, the plugin directories): what keeps a child from them is
// then the carve-out of the server's files alone, not the allowed paths.
func coverServerFiles(t *testing.T, e *env) {
	t.Helper()
	pol := mustRead(t, e.policy)
	wide := strings.Replace(pol, `allowed_paths: ["`+e.workspace+`/**"]`, `allowed_paths: ["`+e.dir+`/**"]`, 1)
	if wide == pol {
		t.Fatalf("no allowed_paths of %s to widen in:\n%s", e.workspace, pol)
	}
	e.write(t, "policy.yaml", wide)
}

// TestE2EChildrenKeptFromServerFiles: with allowed paths that cover the
// server's own files, an external plugin, an MCP plugin and a servers:
// upstream each read a file beside them but neither read nor change the
// audit log, the policy or another plugin: the sandbox refuses, and the
// call is allowed and audited as a tool error.
func TestE2EChildrenKeptFromServerFiles(t *testing.T) {
	type attempt struct {
		name, tool string
		args       map[string]any
		want       string // in the answer; an error unless it is the sibling's content
	}
	check := func(t *testing.T, e *env, cs *mcp.ClientSession, sibling string, attempts []attempt) {
		t.Helper()
		for _, a := range attempts {
			t.Run(a.name, func(t *testing.T) {
				res := call(t, cs, a.tool, a.args)
				isErr := a.want != sibling
				if res.IsError != isErr || !strings.Contains(text(res), a.want) {
					t.Fatalf("%s %v = %v %q, want error %v and %q", a.tool, a.args, res.IsError, text(res), isErr, a.want)
				}
				rec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": a.tool})
				status := "ok"
				if isErr {
					status = "tool_error"
				}
				if rec["result"] != "allow" {
					t.Fatalf("tool_call record %v, want allow (the sandbox refuses, not the policy)", rec)
				}
				e.findRecord(t, map[string]any{"kind": "tool_result", "decision_id": rec["decision_id"], "status": status})
			})
		}
	}
	const sibling = "beside the server's files"

	t.Run("external-plugin", func(t *testing.T) {
		e := newEnv(t, extPolicy("plugins/fx", "plugins/other"))
		extPlugin(t, e, "fx", fxManifest("fx", "fx", ""))
		extPlugin(t, e, "other", fxManifest("other", "ot", ""))
		coverServerFiles(t, e)
		notes := e.write(t, "notes.txt", sibling)
		cs, _ := e.connectLog(t)
		other := filepath.Join(e.dir, "plugins", "other", "fx")
		check(t, e, cs, sibling, []attempt{
			{"read-sibling", "fx_read", map[string]any{"path": notes}, sibling},
			{"read-audit-log", "fx_read", map[string]any{"path": e.audit}, "open " + e.audit + ": permission denied"},
			{"read-policy", "fx_read", map[string]any{"path": e.policy}, "open " + e.policy + ": permission denied"},
			{"write-audit-log", "fx_write", map[string]any{"path": e.audit}, "permission denied"},
			{"write-other-plugin", "fx_write", map[string]any{"path": other}, "permission denied"},
			{"plant-in-log-dir", "fx_write", map[string]any{"path": filepath.Join(filepath.Dir(e.audit), "planted")}, "permission denied"},
		})
		if _, err := os.Stat(filepath.Join(filepath.Dir(e.audit), "planted")); err == nil {
			t.Error("a plugin planted a file beside the audit log")
		}
	})

	t.Run("mcp-plugin", func(t *testing.T) {
		e := newEnv(t, "plugins:\n  external: [plugins/notes]\n")
		mcpPluginDir(t, e, "notes", "tool_prefix: notes_\n")
		coverServerFiles(t, e)
		notes := e.write(t, "notes.txt", sibling)
		cs := e.connect(t, "")
		check(t, e, cs, sibling, []attempt{
			{"read-sibling", "notes_read_file", map[string]any{"path": notes}, sibling},
			{"read-audit-log", "notes_read_file", map[string]any{"path": e.audit}, "open " + e.audit + ": permission denied"},
			{"read-policy", "notes_read_file", map[string]any{"path": e.policy}, "open " + e.policy + ": permission denied"},
		})
	})

	t.Run("servers-upstream", func(t *testing.T) {
		u := newUpstreamEnv(t, defaultNetwork, "", "")
		coverServerFiles(t, u.env)
		notes := u.write(t, "notes.txt", sibling)
		cs := u.connectSlow(t)
		check(t, u.env, cs, sibling, []attempt{
			{"read-sibling", "demo__read_file", map[string]any{"path": notes}, sibling},
			{"read-audit-log", "demo__read_file", map[string]any{"path": u.audit}, "read " + u.audit + ": EACCES"},
			{"read-policy", "demo__read_file", map[string]any{"path": u.policy}, "read " + u.policy + ": EACCES"},
		})
	})
}
