package bugtracker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// childEnv marks the test process that asUnprivileged starts.
const childEnv = "MCP_SECURE_TEST_UNPRIVILEGED"

// asUnprivileged runs the calling test again, in a child process of the
// test binary, as the unprivileged user nobody (with setpriv), when this
// process is root; it returns true when it did, and the caller returns. A
// test whose subject is a permission check would otherwise pass as root
// without checking anything. When not root (or in the child) it returns
// false and the test runs here.
func asUnprivileged(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 || os.Getenv(childEnv) != "" {
		return false
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("running as root needs setpriv (util-linux) to run this case as nobody: %v", err)
	}
	// The test binary may sit in a directory only root can enter: run a
	// copy nobody can execute.
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "child.test")
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	pattern := "^" + strings.ReplaceAll(t.Name(), "/", "$/^") + "$"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		copyPath, "-test.run="+pattern, "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1", "TMPDIR=/tmp", "HOME=/nonexistent")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	t.Logf("ran as nobody:\n%s", out)
	return true
}
