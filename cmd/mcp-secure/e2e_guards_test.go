package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EFilesystemAndCommandGuards drives the filesystem and command
// guards through the real binary with the fixture tools of the e2e build:
// schema-annotated arguments are decided before the handler, everything
// else at use, and every decision is audited.
func TestE2EFilesystemAndCommandGuards(t *testing.T) {
	e := newEnv(t, "commands:\n  blocked: [curl, wget]\n")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(e.workspace, "notes.txt"), []byte("workspace notes"), 0o600))
	must(os.WriteFile(filepath.Join(e.workspace, ".env"), []byte("API_KEY=env-secret-9"), 0o600))
	must(os.WriteFile(filepath.Join(e.dir, "outside.txt"), []byte("outside-secret-4"), 0o600))
	must(os.Symlink(".env", filepath.Join(e.workspace, "innocent.txt")))
	must(os.Symlink("../outside.txt", filepath.Join(e.workspace, "escape.txt")))
	bin := filepath.Join(e.dir, "bin")
	must(os.MkdirAll(bin, 0o755))
	must(os.WriteFile(filepath.Join(bin, "curl"), []byte("#!/bin/sh\necho CURL-RAN\n"), 0o755))
	must(os.Symlink(filepath.Join(bin, "curl"), filepath.Join(bin, "fetcher")))

	cs := e.connect(t, "2025-11-25")
	for _, tc := range []struct {
		name, tool string
		args       map[string]any
		wantErr    bool
		want       string
		auditKind  string
	}{
		{"allow/read-annotated", "fixture_read", map[string]any{"path": e.workspace + "/notes.txt"}, false, "workspace notes", "filesystem"},
		{"deny/annotated-denied-name", "fixture_read", map[string]any{"path": e.workspace + "/.env"}, true, `matches filesystem.denied_paths pattern "**/.env"`, "filesystem"},
		{"deny/annotated-outside", "fixture_read", map[string]any{"path": e.workspace + "/../outside.txt"}, true, "is not under filesystem.allowed_paths", "filesystem"},
		{"deny/annotated-relative", "fixture_read", map[string]any{"path": "notes.txt"}, true, "a path argument must be absolute", ""},
		{"deny/at-use-outside", "fixture_read_plain", map[string]any{"file": e.dir + "/outside.txt"}, true, "was stopped: filesystem policy denied", "filesystem"},
		{"deny/at-use-symlink-to-denied", "fixture_read_plain", map[string]any{"file": e.workspace + "/innocent.txt"}, true, ".env", "filesystem"},
		{"deny/at-use-symlink-out", "fixture_read_plain", map[string]any{"file": e.workspace + "/escape.txt"}, true, "leads out of its allowed directory", "filesystem"},
		{"allow/write", "fixture_write", map[string]any{"path": e.workspace + "/out.txt", "text": "new"}, false, "written", "filesystem"},
		{"deny/write-outside", "fixture_write", map[string]any{"path": e.dir + "/planted.txt", "text": "x"}, true, "is not under filesystem.allowed_paths", "filesystem"},
		{"allow/run", "fixture_run", map[string]any{"argv": []string{"echo", "hello"}, "dir": e.workspace}, false, "hello", "command"},
		{"deny/run-blocked", "fixture_run", map[string]any{"argv": []string{bin + "/curl", "http://127.0.0.1/"}}, true, `command "curl" is in commands.blocked`, "command"},
		{"deny/run-symlink-to-blocked", "fixture_run", map[string]any{"argv": []string{bin + "/fetcher"}}, true, `command "curl" is in commands.blocked`, "command"},
		{"deny/run-dir-outside", "fixture_run", map[string]any{"argv": []string{"echo", "x"}, "dir": e.dir}, true, "is not under filesystem.allowed_paths", "filesystem"},
		{"deny/fetch-annotated-url", "fixture_fetch", map[string]any{"url": "http://10.1.2.3:8080/"}, true, "10.1.2.3:8080 is not in network.allowed_ranges", "network"},
		{"deny/fetch-bad-scheme", "fixture_fetch", map[string]any{"url": "file:///etc/passwd"}, true, `URL scheme "file" is not allowed`, "network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, cs, tc.tool, tc.args)
			msg := text(res)
			if res.IsError != tc.wantErr || !strings.Contains(msg, tc.want) {
				t.Fatalf("isError=%v %q; want isError=%v containing %q", res.IsError, msg, tc.wantErr, tc.want)
			}
			for _, secret := range []string{"env-secret-9", "outside-secret-4", "CURL-RAN"} {
				if strings.Contains(msg, secret) {
					t.Errorf("result leaks %q", secret)
				}
			}
			if sc, _ := res.StructuredContent.(map[string]any); tc.wantErr && tc.auditKind != "" && (sc["error"] != "denied_by_policy" || sc["kind"] != tc.auditKind) {
				t.Errorf("structuredContent = %v", res.StructuredContent)
			}
			if tc.auditKind == "" {
				return
			}
			result := "allow"
			if tc.wantErr {
				result = "deny"
			}
			callRec := e.findRecord(t, map[string]any{"kind": "tool_call", "tool": tc.tool})
			rec := e.findRecord(t, map[string]any{"kind": tc.auditKind, "tool": tc.tool, "result": result})
			if rec["parent_decision_id"] != callRec["decision_id"] {
				t.Errorf("%s record not linked to its call: %v", tc.auditKind, rec)
			}
		})
	}
	if data, _ := os.ReadFile(e.workspace + "/out.txt"); string(data) != "new" {
		t.Errorf("write did not land: %q", data)
	}
	if _, err := os.Stat(e.dir + "/planted.txt"); err == nil {
		t.Error("a denied write landed")
	}
}
