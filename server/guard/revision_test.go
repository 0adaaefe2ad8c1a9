//go:build unix

package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// A guard's record names the bundle revision of the policy that decided,
// not the one in force when it is written: a reload between the two
// does not relabel it. A network decision kept from before says so too.
func TestGuardRecordsNameTheRevisionThatDecided(t *testing.T) {
	dir := t.TempDir()
	src := fmt.Sprintf("filesystem:\n  allowed_paths: [\"%s/**\"]\nnetwork:\n  allowed_ranges: [\"127.0.0.1/32\"]\ncommands:\n  allowed: [\"true\"]\n", dir)
	pol, err := policy.Parse("rev.yaml", dir, []byte(src), func(k string) (string, bool) { return "/h", k == "HOME" })
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.Builtin(pol.Data(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Revision = new("r1")
	eng, err := engine.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	// The label in force names a later revision than the one deciding.
	alog := audit.New(audit.NewWriterSink(&buf), &audit.Options{Labels: map[string]string{audit.LabelBundleRevision: "r2"}})
	files := NewFiles(eng, alog, &FilesOptions{Roots: pol.Roots()})
	cmds := NewCommands(eng, alog, files, &CommandsOptions{Allowed: pol.Commands.Allowed, Unconfined: noLandlock(t)})
	netw := NewNetwork(eng, alog, &NetworkOptions{Generation: func() uint64 { return eng.StableGeneration(engine.Network) }})
	ctx := WithCall(context.Background(), Call{Tool: "t", RequestID: "1", DecisionID: "parent"})

	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := files.ReadFile(ctx, filepath.Join(dir, "a.txt"), 1<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := files.ReadFile(ctx, "/etc/passwd", 1<<10); err == nil {
		t.Fatal("a read outside the allowed paths was allowed")
	}
	if _, err := cmds.Check(ctx, []string{"true"}, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := cmds.Check(ctx, []string{"ls"}, dir); err == nil {
		t.Fatal("a command not allowed was allowed")
	}
	for range 2 { // the second decision is the kept one
		if err := netw.CheckURL(ctx, "http://127.0.0.1:9/"); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[string]int{}
	for line := range bytes.Lines(buf.Bytes()) {
		var rec struct {
			Kind   string            `json:"kind"`
			Result string            `json:"result"`
			Labels map[string]string `json:"labels"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Kind == audit.KindGenesis {
			continue
		}
		kinds[rec.Kind]++
		if got := rec.Labels[audit.LabelBundleRevision]; got != "r1" {
			t.Errorf("%s %s record: bundle_revision %q, want r1", rec.Kind, rec.Result, got)
		}
	}
	if kinds[audit.KindFilesystem] < 2 || kinds[audit.KindCommand] < 2 || kinds[audit.KindNetwork] != 2 {
		t.Errorf("records by kind %v, want filesystem, command and network decisions", kinds)
	}
}
