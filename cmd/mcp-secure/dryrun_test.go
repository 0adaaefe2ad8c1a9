package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policy check (the start-up checks) warns of a dry run, and refuses a
// dry-run section that does not build.
func TestCheckPolicyDryRun(t *testing.T) {
	for name, tc := range map[string]struct {
		section string
		files   map[string]string
		warn    string // in a warning, when it checks
		err     string // in the error otherwise
	}{
		"ok/modules": {
			section: "dry_run:\n  modules: [c.rego]\n",
			files:   map[string]string{"c.rego": "package mcp.tools\n\ndeny contains \"x\" if input.tool == \"x\"\n"},
			warn:    "DRY RUN: this policy with 1 dry-run modules",
		},
		"ok/policy": {
			section: "dry_run:\n  policy: c.yaml\n",
			files:   map[string]string{"c.yaml": "version: \"1.0\"\n"},
			warn:    "NEVER enforced",
		},
		"fail/module-widens": {
			section: "dry_run:\n  modules: [c.rego]\n",
			files:   map[string]string{"c.rego": "package mcp.tools\n\nallow := true\n"},
			err:     "c.rego",
		},
		"fail/nested": {
			section: "dry_run:\n  policy: c.yaml\n",
			files:   map[string]string{"c.yaml": "version: \"1.0\"\ndry_run:\n  modules: [d.rego]\n", "d.rego": "package mcp.tools\n"},
			err:     "has a dry_run section of its own",
		},
		"fail/missing": {
			section: "dry_run:\n  modules: [absent.rego]\n",
			err:     "dry_run.modules[0]",
		},
		"fail/empty": {
			section: "dry_run: {}\n",
			err:     "names neither a policy nor modules",
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
			for f, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file := filepath.Join(dir, "policy.yaml")
			yaml := "version: \"1.0\"\naudit:\n  log_file: " + filepath.Join(dir, "log", "audit.log") + "\n" + tc.section
			if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			chk, err := checkPolicy(t.Context(), file)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if chk.dry == nil {
				t.Fatal("no dry-run engine")
			}
			if !strings.Contains(strings.Join(chk.warnings, "\n"), tc.warn) {
				t.Errorf("warnings = %q, want %q", chk.warnings, tc.warn)
			}
		})
	}
}
