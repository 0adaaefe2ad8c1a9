package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
			err:     "c.rego:3: rule allow",
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

// dryRunVarPolicy writes, in a fresh directory, a policy whose dry-run
// policy (c.yaml) takes ${DRY_SECRET}, with extra appended to the
// enforced one; it returns the policy file.
func dryRunVarPolicy(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("DRY_SECRET", "s3cret")
	dry := "version: \"1.0\"\nplugins:\n  websearch:\n    api_key: \"${DRY_SECRET}\"\n"
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(dry), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "policy.yaml")
	yaml := "version: \"1.0\"\naudit:\n  log_file: " + filepath.Join(dir, "log", "audit.log") + "\ntools:\n  timeout: 10\n" + extra
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// The ${VAR} of the dry-run policy are the server's own, as the enforced
// policy's are: policy check warns of the upstream servers that ask for
// one and will not start.
func TestCheckPolicyDryRunVariablesAreOwn(t *testing.T) {
	file := dryRunVarPolicy(t, `dry_run:
  policy: c.yaml
servers:
  byname:
    command: /bin/true
    env:
      DRY_SECRET: "x"
  viaref:
    command: /bin/true
    env:
      TOKEN: "${DRY_SECRET}"
`)
	chk, err := checkPolicy(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	warnings := strings.Join(chk.warnings, "\n")
	for _, w := range []string{
		"upstream server byname will not start: servers.byname.env.DRY_SECRET is refused",
		"upstream server viaref will not start: servers.viaref.env.TOKEN takes ${DRY_SECRET}",
	} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings = %q, want %q", chk.warnings, w)
		}
	}
}

// ownNames is an ownEnvAdder that keeps what it is told.
type ownNames []string

func (o *ownNames) AddOwnEnv(names ...string) { *o = append(*o, names...) }

// A reload that brings in a dry-run policy makes its ${VAR} the server's
// own, whether the reload is applied or refused (a call timeout only a
// restart applies), as for the enforced policy's.
func TestReloadDryRunVariablesAreOwn(t *testing.T) {
	for name, tc := range map[string]struct {
		extra   string
		applied bool
	}{
		"applied": {extra: "", applied: true},
		"refused": {extra: "tools:\n  timeout: 11\n", applied: false},
	} {
		t.Run(name, func(t *testing.T) {
			file := dryRunVarPolicy(t, "")
			chk, err := checkPolicy(t.Context(), file)
			if err != nil {
				t.Fatal(err)
			}
			r, err := newReloader(chk, file, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			var own ownNames
			r.own = &own
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			next := string(src) + "dry_run:\n  policy: c.yaml\n"
			if tc.extra != "" {
				next = strings.Replace(next, "tools:\n  timeout: 10\n", tc.extra, 1)
			}
			if err := os.WriteFile(file, []byte(next), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := r.reload(t.Context(), "test"); got != tc.applied {
				t.Fatalf("reload applied = %v, want %v", got, tc.applied)
			}
			if !slices.Contains(own, "DRY_SECRET") {
				t.Errorf("own variables added = %v, want DRY_SECRET among them", own)
			}
		})
	}
}
