//go:build unix

package guard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// TestLaunchUpstream starts an upstream server's program through the
// door: it has no plugin directory (it runs in /), it reads its
// read-only paths, gets its env, and its start is audited (kind
// upstream) with the names, not the values, of its environment.
func TestLaunchUpstream(t *testing.T) {
	w := newExecWorld(t, "")
	code := filepath.Join(w.dir, "code")
	os.MkdirAll(code, 0o755)
	os.WriteFile(filepath.Join(code, "data.txt"), []byte("upstream data\n"), 0o644)
	script := filepath.Join(w.dir, "up-server")
	// Only the program and its interpreter may run: the shell reads the file.
	os.WriteFile(script, []byte("#!/bin/sh\nread line\nread data < "+code+"/data.txt\necho \"got=$line pwd=$(pwd) v=$V data=$data\"\nwhile :; do :; done\n"), 0o755)
	spec := &plugin.LaunchSpec{Server: "demo", Path: script, Args: []string{script}, Env: map[string]string{"V": "tok-secret-value"},
		EnvFrom: []string{"DEMO_TOKEN"}, ReadOnly: []string{code}, LongLived: true}
	desc, err := w.cmds.LaunchConfinement(spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(desc, "read and execute") {
		t.Errorf("an upstream has no plugin directory, yet: %q", desc)
	}
	tg, err := w.cmds.launchTarget(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Dir != "/" || slices.Contains(tg.Exec, "/") || !slices.Contains(tg.ReadOnly, code) {
		t.Errorf("target dir %q exec %v read-only %v", tg.Dir, tg.Exec, tg.ReadOnly)
	}
	if tg.Limits.CPU != longLivedCPU {
		t.Errorf("CPU limit %v, want the long-lived %v", tg.Limits.CPU, longLivedCPU)
	}
	p, err := w.cmds.Launch(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.Kill(); p.Wait() }()
	go io.Copy(io.Discard, p.Stderr())
	io.WriteString(p.Stdin(), "hello\n")
	done := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(p.Stdout()).ReadString('\n')
		done <- line
	}()
	select {
	case out := <-done:
		if want := "got=hello pwd=/ v=tok-secret-value data=upstream data"; strings.TrimSpace(out) != want {
			t.Errorf("output %q, want %q", out, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no output")
	}
	var rec map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(w.audit.String()), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["kind"] == "upstream" {
			rec = r
		}
	}
	if rec == nil {
		t.Fatalf("no upstream record in %s", w.audit)
	}
	in, _ := rec["input"].(map[string]any)
	if rec["result"] != "allow" || in["server"] != "demo" || in["pid"] == nil || strings.Join(toStrings(in["env"]), ",") != "V" {
		t.Errorf("upstream record %v", rec)
	}
	if strings.Contains(w.audit.String(), "tok-secret-value") {
		t.Error("an env value reached the audit log")
	}
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// TestLaunchRefusals: what the door refuses before anything starts, with
// the offending name in the error.
func TestLaunchRefusals(t *testing.T) {
	w := newExecWorld(t, "")
	logs := filepath.Join(w.dir, "logs")
	os.MkdirAll(logs, 0o700)
	auditLog := filepath.Join(logs, "audit.log")
	os.WriteFile(auditLog, nil, 0o600)
	os.Symlink(logs, filepath.Join(w.dir, "innocent"))
	cmds := NewCommands(nil, auditTo(w.audit), w.files, &CommandsOptions{
		Unconfined: noLandlock(t),
		Protected:  []ProtectedPath{{Path: logs, What: "audit log directory"}, {Path: filepath.Join(w.dir, "bugs.db"), Prefix: true, What: "bug database"}},
		OwnEnv:     []string{"BUNDLE_TOKEN"},
	})
	base := plugin.LaunchSpec{Server: "demo", Path: "/bin/sh", Args: []string{"sh"}}
	for name, c := range map[string]struct {
		edit func(*plugin.LaunchSpec)
		want string // "" is allowed
	}{
		"allow/plain":           {func(*plugin.LaunchSpec) {}, ""},
		"allow/read-elsewhere":  {func(s *plugin.LaunchSpec) { s.ReadOnly = []string{w.ws} }, ""},
		"allow/env":             {func(s *plugin.LaunchSpec) { s.Env = map[string]string{"TOKEN": "x"}; s.EnvFrom = []string{"GH_TOKEN"} }, ""},
		"deny/read-root":        {func(s *plugin.LaunchSpec) { s.ReadOnly = []string{"/"} }, "would expose the server's audit log directory"},
		"deny/read-parent":      {func(s *plugin.LaunchSpec) { s.ReadOnly = []string{w.dir} }, "would expose"},
		"deny/read-inside":      {func(s *plugin.LaunchSpec) { s.ReadOnly = []string{auditLog} }, "would expose"},
		"deny/read-symlink":     {func(s *plugin.LaunchSpec) { s.ReadOnly = []string{filepath.Join(w.dir, "innocent")} }, "would expose"},
		"deny/read-prefix":      {func(s *plugin.LaunchSpec) { s.ReadOnly = []string{filepath.Join(w.dir, "bugs.db-wal")} }, "bug database"},
		"deny/read-relative":    {func(s *plugin.LaunchSpec) { s.ReadOnly = []string{"etc"} }, "not absolute"},
		"deny/env-node-options": {func(s *plugin.LaunchSpec) { s.Env = map[string]string{"NODE_OPTIONS": "--require /x.js"} }, "NODE_OPTIONS"},
		"deny/env-otel":         {func(s *plugin.LaunchSpec) { s.Env = map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "k=v"} }, "OTEL_EXPORTER_OTLP_HEADERS"},
		"deny/env-bundle-token": {func(s *plugin.LaunchSpec) { s.Env = map[string]string{"BUNDLE_TOKEN": "x"} }, "BUNDLE_TOKEN"},
		"deny/from-otel": {func(s *plugin.LaunchSpec) {
			s.Env = map[string]string{"H": "x"}
			s.EnvFrom = []string{"OTEL_EXPORTER_OTLP_HEADERS"}
		}, "${OTEL_EXPORTER_OTLP_HEADERS}"},
		"deny/from-bundle-token": {func(s *plugin.LaunchSpec) { s.Env = map[string]string{"T": "x"}; s.EnvFrom = []string{"BUNDLE_TOKEN"} }, "${BUNDLE_TOKEN}"},
		"deny/no-dir-no-server":  {func(s *plugin.LaunchSpec) { s.Server, s.Plugin = "", "p" }, "no plugin directory"},
	} {
		t.Run(name, func(t *testing.T) {
			spec := base
			c.edit(&spec)
			_, err := cmds.LaunchConfinement(&spec)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if spec.Server != "" && !strings.Contains(err.Error(), "upstream server demo") {
				t.Errorf("error %q does not name the server", err)
			}
		})
	}
}

// TestAddOwnEnv: a variable added to the server's own after the door was
// built (a reloaded policy's ${VAR}) is refused from then on, to every
// child: by name to a command or a plugin, as the source of an
// upstream's ${VAR}. Names given at construction stay refused.
func TestAddOwnEnv(t *testing.T) {
	w := newExecWorld(t, "")
	cmds := NewCommands(w.cmds.decide, auditTo(w.audit), w.files, &CommandsOptions{Unconfined: noLandlock(t), OwnEnv: []string{"BUNDLE_TOKEN"}})
	byName := &plugin.LaunchSpec{Plugin: "p", Dir: w.dir, Path: "/bin/sh", Args: []string{"sh"}, Env: map[string]string{"LATE_TOKEN": "v"}}
	from := &plugin.LaunchSpec{Server: "demo", Path: "/bin/sh", Args: []string{"sh"}, Env: map[string]string{"T": "v"}, EnvFrom: []string{"LATE_TOKEN"}}
	run := func() error {
		_, err := cmds.Exec(t.Context(), []string{"/bin/true"}, plugin.ExecOptions{Dir: w.ws, Env: map[string]string{"LATE_TOKEN": "v"}})
		return err
	}
	for _, s := range []*plugin.LaunchSpec{byName, from} {
		if _, err := cmds.LaunchConfinement(s); err != nil {
			t.Fatalf("%s before: %v", s.Who(), err)
		}
	}
	if err := run(); err != nil && strings.Contains(err.Error(), "LATE_TOKEN") {
		t.Fatalf("command before: %v", err)
	}

	cmds.AddOwnEnv("LATE_TOKEN", "BUNDLE_TOKEN")
	cmds.AddOwnEnv() // nothing new
	for s, want := range map[*plugin.LaunchSpec]string{byName: "environment variable LATE_TOKEN is refused", from: "${LATE_TOKEN} is the server's own"} {
		if _, err := cmds.LaunchConfinement(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s after: %v, want %q", s.Who(), err, want)
		}
	}
	if err := run(); err == nil || !strings.Contains(err.Error(), "LATE_TOKEN is refused") {
		t.Errorf("command after: %v, want LATE_TOKEN refused", err)
	}
	// A start refused from then on (an upstream's restart, a plugin's
	// launch within a call) is audited as a denial naming the variable.
	w.audit.Reset()
	if _, err := cmds.Launch(t.Context(), from); err == nil {
		t.Fatal("an upstream started with LATE_TOKEN the server's own")
	}
	if _, err := cmds.Launch(WithCall(t.Context(), Call{Tool: "p_tool", DecisionID: "d-1"}), byName); err == nil {
		t.Fatal("a plugin started with LATE_TOKEN the server's own")
	}
	var recs []audit.Record
	for _, line := range strings.Split(strings.TrimSpace(w.audit.String()), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 || recs[0].Kind != audit.KindUpstream || recs[0].Result != audit.ResultDeny ||
		recs[1].Kind != audit.KindCommand || recs[1].Result != audit.ResultDeny || recs[1].ParentDecisionID != "d-1" ||
		!strings.Contains(fmt.Sprint(recs[0].Reasons, recs[1].Reasons), "LATE_TOKEN") {
		t.Errorf("audit of the refused starts: %+v, want an upstream and a command denial naming LATE_TOKEN", recs)
	}
	old := &plugin.LaunchSpec{Server: "demo", Path: "/bin/sh", Args: []string{"sh"}, Env: map[string]string{"T": "v"}, EnvFrom: []string{"BUNDLE_TOKEN"}}
	if _, err := cmds.LaunchConfinement(old); err == nil || !strings.Contains(err.Error(), "${BUNDLE_TOKEN}") {
		t.Errorf("a name given at construction: %v, want it refused still", err)
	}
}
