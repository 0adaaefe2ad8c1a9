//go:build linux

package guard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-secure/mcp-secure/server/internal/filememo"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// What launchTarget read from a plugin's executable (its #! line, its
// dynamic loader) is remembered only while the file stays the same: an
// executable replaced after a launch is read again at the next one.
func TestLaunchTargetRereadsAReplacedExecutable(t *testing.T) {
	t.Cleanup(filememo.SetRacyWindowForTest(0))
	w := newExecWorld(t, "")
	plug := filepath.Join(w.dir, "plug")
	os.MkdirAll(plug, 0o755)
	run := filepath.Join(plug, "run")
	spec := &plugin.LaunchSpec{Plugin: "p", Dir: plug, Path: run, Args: []string{run}}
	sh, err := Resolve("sh")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := Resolve("cat")
	if err != nil {
		t.Fatal(err)
	}
	loader := sandbox.Interpreter(cat.Real)
	if loader == "" {
		t.Skipf("%s is static: no loader to see come and go", cat.Real)
	}
	install := func(data []byte) {
		t.Helper()
		time.Sleep(20 * time.Millisecond) // past the file times' tick
		tmp := run + ".new"
		if err := os.WriteFile(tmp, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, run); err != nil {
			t.Fatal(err)
		}
	}
	execs := func() []string {
		t.Helper()
		tg, err := w.cmds.launchTarget(t.Context(), spec)
		if err != nil {
			t.Fatal(err)
		}
		return tg.Exec
	}
	catELF, err := os.ReadFile(cat.Real)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name         string
		data         []byte
		want, unwant []string
	}{
		{"script/sh", []byte("#!" + sh.Real + "\n"), []string{run, sh.Real}, nil},
		{"script/sh-again", nil, []string{run, sh.Real}, nil},
		{"replaced/elf", catELF, []string{run, loader}, []string{sh.Real}},
		{"replaced/script-again", []byte("#!" + sh.Real + "\n"), []string{run, sh.Real}, nil},
	} {
		if step.data != nil {
			install(step.data)
		}
		got := execs()
		for _, p := range step.want {
			if !slices.Contains(got, p) {
				t.Errorf("%s: executables %v lack %s", step.name, got, p)
			}
		}
		for _, p := range step.unwant {
			if slices.Contains(got, p) {
				t.Errorf("%s: executables %v still hold %s", step.name, got, p)
			}
		}
	}
}

// The sha256 a manifest pins holds at every start, not only when the
// manifest was loaded: an executable replaced since is refused, and
// taken again once it is the pinned file again.
func TestLaunchTargetChecksThePinEveryStart(t *testing.T) {
	t.Cleanup(filememo.SetRacyWindowForTest(0))
	w := newExecWorld(t, "")
	plug := filepath.Join(w.dir, "plug")
	os.MkdirAll(plug, 0o755)
	run := filepath.Join(plug, "run")
	good := []byte("#!/bin/sh\necho good\n")
	install := func(data []byte) {
		t.Helper()
		time.Sleep(20 * time.Millisecond) // past the file times' tick
		tmp := run + ".new"
		if err := os.WriteFile(tmp, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, run); err != nil {
			t.Fatal(err)
		}
	}
	install(good)
	sum := sha256.Sum256(good)
	spec := &plugin.LaunchSpec{Plugin: "p", Dir: plug, Path: run, Args: []string{run}, SHA256: hex.EncodeToString(sum[:]), SHA256Path: run}
	for _, step := range []struct {
		name     string
		data     []byte
		mismatch bool
	}{
		{"allow/pinned", nil, false},
		{"allow/pinned-again", nil, false},
		{"deny/replaced", []byte("#!/bin/sh\necho evil\n"), true},
		{"deny/replaced-again", nil, true},
		{"allow/restored", good, false},
	} {
		if step.data != nil {
			install(step.data)
		}
		_, err := w.cmds.launchTarget(t.Context(), spec)
		if got := err != nil && strings.Contains(err.Error(), "sha256 mismatch"); got != step.mismatch {
			t.Errorf("%s: launchTarget error %v, want a mismatch: %v", step.name, err, step.mismatch)
		}
		if !step.mismatch && err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}
}

// The file a pin was checked on is the file started: the launcher
// refuses to start a target whose pinned file was replaced, or written
// in place, after launchTarget hashed it.
func TestPinnedFileChangedAfterItsCheckIsNotStarted(t *testing.T) {
	t.Cleanup(filememo.SetRacyWindowForTest(0))
	w := newExecWorld(t, "")
	plug := filepath.Join(w.dir, "plug")
	os.MkdirAll(plug, 0o755)
	run := filepath.Join(plug, "run")
	good := []byte("#!/bin/sh\necho good\n")
	evil := []byte("#!/bin/sh\necho evil\n") // the same size
	if err := os.WriteFile(run, good, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	spec := &plugin.LaunchSpec{Plugin: "p", Dir: plug, Path: run, Args: []string{run}, SHA256: hex.EncodeToString(sum[:]), SHA256Path: run}
	start := func(tg sandbox.Target) (string, error) {
		t.Helper()
		var out bytes.Buffer
		c := sandbox.Command(t.Context(), tg)
		c.Stdout = &out
		err := c.Run()
		return out.String(), err
	}
	for _, tc := range []struct {
		name   string
		change func()
	}{
		{"replaced", func() {
			tmp := run + ".new"
			if err := os.WriteFile(tmp, evil, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, run); err != nil {
				t.Fatal(err)
			}
		}},
		{"written-in-place", func() {
			if err := os.WriteFile(run, evil, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		if err := os.WriteFile(run, good, 0o755); err != nil {
			t.Fatal(err)
		}
		tg, err := w.cmds.launchTarget(t.Context(), spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tg.Pinned == nil || tg.Pinned.Path != run {
			t.Fatalf("%s: pinned file %+v", tc.name, tg.Pinned)
		}
		if out, err := start(tg); err != nil || out != "good\n" {
			t.Fatalf("%s: the pinned file as checked: %q %v", tc.name, out, err)
		}
		tc.change()
		out, err := start(tg)
		var se *sandbox.SetupError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, "changed after its sha256 was checked") || out != "" {
			t.Errorf("%s after the check: out %q, err %v; want it refused", tc.name, out, err)
		}
	}
}

// The launcher checks the path it runs, the executable as it resolved,
// not the manifest's name for it: a name that resolved to one file and
// leads to the hashed one when the launcher looks starts neither. Here
// the directory the path resolved through is renamed away (the hashed
// file untouched, its times with it), another file takes its place, and
// the name is pointed at the hashed file's new place.
func TestPinnedCheckIsOfTheFileRun(t *testing.T) {
	t.Cleanup(filememo.SetRacyWindowForTest(0))
	w := newExecWorld(t, "")
	plug := filepath.Join(w.dir, "plug")
	good := []byte("#!/bin/sh\necho good\n")
	evil := []byte("#!/bin/sh\necho evil\n")
	sub, run := filepath.Join(plug, "sub"), filepath.Join(plug, "run")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "g"), good, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/g", run); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	spec := &plugin.LaunchSpec{Plugin: "p", Dir: plug, Path: run, Args: []string{run}, SHA256: hex.EncodeToString(sum[:]), SHA256Path: run}
	tg, err := w.cmds.launchTarget(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Path != filepath.Join(sub, "g") || tg.Pinned == nil || tg.Pinned.Path != tg.Path {
		t.Fatalf("target %s, pinned %+v: want the launcher to check the path it runs", tg.Path, tg.Pinned)
	}
	if err := os.Rename(sub, filepath.Join(plug, "away")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "g"), evil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(run); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("away/g", run); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := sandbox.Command(t.Context(), tg)
	c.Stdout = &out
	err = c.Run()
	var se *sandbox.SetupError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "changed after its sha256 was checked") || out.Len() != 0 {
		t.Errorf("out %q, err %v; want it refused", out.String(), err)
	}
}

// A pinned file changed within the last tick is hashed again once the
// tick is over (its times will move with any later write); one written
// again meanwhile is refused, and so is one whose wait is cancelled.
func TestPinnedFileSettlesBeforeItIsTrusted(t *testing.T) {
	t.Cleanup(filememo.SetRacyWindowForTest(0))
	path := filepath.Join(t.TempDir(), "run")
	write := func() {
		t.Helper()
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write()
	_, id, known, err := settledSHA256(t.Context(), path)
	if err != nil || !known {
		t.Fatalf("a file written once: known %v, err %v", known, err)
	}
	if age := time.Since(time.Unix(0, id.CtimeNs)); age < settle(id) {
		t.Errorf("identity trusted %v after the file's change, before it settled (%v)", age, settle(id))
	}

	// Written again while the first hash waits for its tick.
	old := settleWait
	t.Cleanup(func() { settleWait = old })
	waits := 0
	settleWait = func(ctx context.Context, d time.Duration) error {
		waits++
		if err := old(ctx, d); err != nil {
			return err
		}
		write()
		return nil
	}
	write()
	if _, _, _, err := settledSHA256(t.Context(), path); err == nil || !strings.Contains(err.Error(), "being written") || waits != 1 {
		t.Errorf("a file written during its wait: err %v after %d waits, want it refused as being written", err, waits)
	}

	settleWait = old
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("the call ended"))
	write()
	if _, _, _, err := settledSHA256(ctx, path); err == nil || err.Error() != "the call ended" {
		t.Errorf("a wait cancelled: err %v", err)
	}
}
