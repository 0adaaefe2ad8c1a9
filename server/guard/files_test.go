//go:build unix

package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/engine"
	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

const (
	outsideSecret = "OUTSIDE-SECRET-7731"
	envSecret     = "ENV-SECRET-2291"
	sshSecret     = "SSH-SECRET-5512"
	allowedText   = "hello from the workspace"
)

// fsWorld is a temporary tree:
//
//	<dir>/ws/               the allowed workspace (policy: <dir>/ws/**)
//	<dir>/ws/notes.txt      allowed content
//	<dir>/ws/.env           denied by name
//	<dir>/ws/.ssh/id_rsa    denied by directory
//	<dir>/ws/sub/           a directory
//	<dir>/ws2/secret.txt    a sibling whose name shares the prefix
//	<dir>/outside/secret.txt
//	links inside ws: abs-out -> <dir>/outside/secret.txt, rel-out ->
//	../outside/secret.txt, dir-out -> ../outside, env-link -> .env,
//	ok-link -> notes.txt, abs-in -> <dir>/ws/notes.txt
type fsWorld struct {
	dir, ws, outside string
	files            *Files
	audit            *bytes.Buffer
}

func newFSWorld(t testing.TB) *fsWorld {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := &fsWorld{dir: dir, ws: filepath.Join(dir, "ws"), outside: filepath.Join(dir, "outside")}
	for p, content := range map[string]string{
		"ws/notes.txt":       allowedText,
		"ws/.env":            envSecret,
		"ws/.ssh/id_rsa":     sshSecret,
		"ws/sub/inner.txt":   allowedText,
		"ws2/secret.txt":     outsideSecret,
		"outside/secret.txt": outsideSecret,
	} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"ws/abs-out":  filepath.Join(dir, "outside/secret.txt"),
		"ws/rel-out":  "../outside/secret.txt",
		"ws/dir-out":  "../outside",
		"ws/env-link": ".env",
		"ws/ok-link":  "notes.txt",
		"ws/abs-in":   filepath.Join(dir, "ws/notes.txt"),
		"ws/sub/up":   "../../outside/secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	src := fmt.Sprintf(`filesystem:
  allowed_paths: ["%s/**"]
  denied_paths: ["**/.env", "**/.env.*", "**/.ssh/**", "**/*.pem", "**/secrets/**"]
`, w.ws)
	pol, err := policy.Parse("fs.yaml", dir, []byte(src), func(k string) (string, bool) { return "/h", k == "HOME" })
	if err != nil {
		t.Fatal(err)
	}
	w.audit = &bytes.Buffer{}
	eng := engineFor(t, pol)
	w.files = NewFiles(eng, audit.New(audit.NewWriterSink(w.audit), nil), &FilesOptions{Roots: pol.Roots()})
	return w
}

func (w *fsWorld) ctx(t testing.TB) context.Context {
	return WithCall(context.Background(), Call{Tool: "reader", RequestID: "5", DecisionID: "parent"})
}

// leaked reports whether data holds any secret of the world.
func leaked(data []byte) bool {
	for _, s := range []string{outsideSecret, envSecret, sshSecret} {
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

// traversalCorpus is at least 100 attempts to read something the policy
// does not allow, built from a workspace and an outside directory.
func traversalCorpus(ws, outside, dir string) []string {
	var c []string
	targets := []string{"outside/secret.txt", "ws2/secret.txt", "ws/.env", "ws/.ssh/id_rsa"}
	for _, tgt := range targets {
		for depth := 1; depth <= 4; depth++ {
			up := strings.Repeat("../", depth)
			c = append(c,
				ws+"/"+up+strings.TrimPrefix(tgt, "ws/"),
				ws+"/"+up+tgt,
				ws+"/sub/"+up+tgt,
				ws+"//"+up+"/"+tgt,
				ws+"/./"+up+"./"+tgt,
			)
		}
		c = append(c,
			dir+"/"+tgt,
			dir+"//"+tgt,
			dir+"/ws/../"+tgt,
			"/proc/self/root"+dir+"/"+tgt,
			"/proc/self/cwd/"+tgt,
			"/proc/1/root"+dir+"/"+tgt,
			"/dev/fd/../../"+dir+"/"+tgt,
		)
	}
	// Encoded dots and slashes are literal names here: confined or absent.
	for _, enc := range []string{"%2e%2e", "%2E%2E", "..%2f", "%2e%2e%2f", "..%5c", "%252e%252e", "..\\..\\", "\u2024\u2024", "．．"} {
		c = append(c, ws+"/"+enc+"/outside/secret.txt", ws+"/"+enc+"/"+enc+"/outside/secret.txt")
	}
	// Case variants of denied names.
	for _, n := range []string{".ENV", ".Env", ".eNv", ".env.local", ".ENV.production", ".SSH/id_rsa", ".Ssh/id_rsa", "KEY.PEM", "a/SECRETS/x", "Secrets/y"} {
		c = append(c, ws+"/"+n)
	}
	// Symlinks leading out, and to denied names.
	for _, l := range []string{"abs-out", "rel-out", "dir-out/secret.txt", "env-link", "sub/up", "sub/../rel-out", "sub/../abs-out"} {
		c = append(c, ws+"/"+l)
	}
	// Home and other shorthand forms are not expanded: outside, or confined names.
	for _, h := range []string{"~/.ssh/id_rsa", "~root/.ssh/id_rsa", "~", "$HOME/.env", "${HOME}/.env"} {
		c = append(c, h, "/"+h, ws+"/../"+h)
	}
	// Plainly outside.
	c = append(c, "/etc/passwd", "/etc/shadow", "/root/.ssh/id_rsa", "/", "/proc/self/environ", "/proc/self/mem", outside, outside+"/", dir)
	// Malformed.
	c = append(c, ws+"/notes.txt\x00.png", ws+"/"+strings.Repeat("a", 300), "/"+strings.Repeat("x/", 2100), ws+"/bad\xff\xfename", "", "relative/path", "../../etc/passwd")
	return c
}

func TestTraversalCorpusDeniedOrConfined(t *testing.T) {
	w := newFSWorld(t)
	corpus := traversalCorpus(w.ws, w.outside, w.dir)
	if len(corpus) < 100 {
		t.Fatalf("corpus has %d attempts, want at least 100", len(corpus))
	}
	ctx := w.ctx(t)
	denied := 0
	for _, p := range corpus {
		data, err := w.files.ReadFile(ctx, p, 0)
		if leaked(data) {
			t.Errorf("ReadFile(%q) leaked a secret", p)
		}
		if err == nil {
			// Allowed only when it is confined to the workspace.
			if !bytes.Equal(data, []byte(allowedText)) {
				t.Errorf("ReadFile(%q) returned unexpected content %q", p, data)
			}
			continue
		}
		if errors.Is(err, ErrDenied) {
			denied++
		}
		// The other operations must not leak either. Inside is the
		// workspace or below it: a sibling such as ws2 only shares its
		// name's prefix.
		inside := func(path string) bool { return path == w.ws || strings.HasPrefix(path, w.ws+"/") }
		if entries, err := w.files.ReadDir(ctx, p); err == nil {
			for _, e := range entries {
				if e.Name() == "secret.txt" && !inside(filepath.Clean(p)) {
					t.Errorf("ReadDir(%q) listed outside content", p)
				}
			}
		}
		if real, err := w.files.Canonical(ctx, p, plugin.OpRead); err == nil && !inside(real) {
			t.Errorf("Canonical(%q) = %q, outside the workspace", p, real)
		}
	}
	if denied < len(corpus)/2 {
		t.Errorf("only %d of %d attempts were denied by policy", denied, len(corpus))
	}
	t.Logf("%d attempts, %d denied by policy, the rest failed confined", len(corpus), denied)
}

func TestAllowedOperations(t *testing.T) {
	w := newFSWorld(t)
	ctx := w.ctx(t)
	if data, err := w.files.ReadFile(ctx, w.ws+"/notes.txt", 0); err != nil || string(data) != allowedText {
		t.Fatalf("read: %q %v", data, err)
	}
	if data, err := w.files.ReadFile(ctx, w.ws+"/ok-link", 0); err != nil || string(data) != allowedText {
		t.Errorf("in-root symlink to an allowed file: %q %v", data, err)
	}
	if _, err := w.files.ReadFile(ctx, w.ws+"/abs-in", 0); err == nil {
		t.Errorf("absolute symlink followed (os.Root must refuse it)")
	}
	entries, err := w.files.ReadDir(ctx, w.ws)
	if err != nil || len(entries) == 0 {
		t.Fatalf("list: %v", err)
	}
	if st, err := w.files.Stat(ctx, w.ws+"/sub"); err != nil || !st.IsDir() {
		t.Errorf("stat: %v", err)
	}
	// Create exclusively, then replace atomically.
	p := w.ws + "/new/dir/file.txt"
	if err := w.files.MkdirAll(ctx, filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"one", "two, longer"} {
		if err := w.files.WriteFile(ctx, p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != content {
			t.Errorf("after write: %q", got)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Dir(p) + "/.*tmp*")
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := w.files.Remove(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := w.files.Remove(ctx, w.ws); err == nil {
		t.Error("removed the allowed root")
	}
	// Writing through a symlink that leads out, or onto a denied name.
	for _, bad := range []string{w.ws + "/dir-out/planted.txt", w.ws + "/.env", w.ws + "/sub/x.pem", w.dir + "/ws2/x"} {
		if err := w.files.WriteFile(ctx, bad, []byte("x")); err == nil {
			t.Errorf("write to %q succeeded", bad)
		}
	}
	if _, err := os.Stat(w.outside + "/planted.txt"); err == nil {
		t.Error("a write escaped through dir-out")
	}
}

func TestSymlinkSwappedAfterDecision(t *testing.T) {
	w := newFSWorld(t)
	ctx := w.ctx(t)
	victim := w.ws + "/sub/inner.txt"
	for name, swap := range map[string]func(){
		"to-outside-absolute": func() { os.Remove(victim); os.Symlink(w.outside+"/secret.txt", victim) },
		"to-outside-relative": func() { os.Remove(victim); os.Symlink("../../outside/secret.txt", victim) },
		"to-denied-in-root":   func() { os.Remove(victim); os.Symlink("../.env", victim) },
		"dir-to-outside": func() {
			os.RemoveAll(w.ws + "/sub")
			os.Symlink(w.outside, w.ws+"/sub")
			os.Symlink(w.outside+"/secret.txt", w.outside+"/inner.txt")
		},
	} {
		t.Run(name, func(t *testing.T) {
			os.RemoveAll(w.ws + "/sub")
			os.MkdirAll(w.ws+"/sub", 0o755)
			os.WriteFile(victim, []byte(allowedText), 0o644)
			w.files.afterDecide = func(string) { swap() }
			defer func() { w.files.afterDecide = nil }()
			data, err := w.files.ReadFile(ctx, victim, 0)
			if err == nil || leaked(data) {
				t.Errorf("swap after decision: err=%v data=%q", err, data)
			}
		})
	}
}

func TestBadPathsAreClearErrors(t *testing.T) {
	w := newFSWorld(t)
	for name, p := range map[string]string{
		"nul":      w.ws + "/a\x00b",
		"long":     w.ws + "/" + strings.Repeat("d/", 2100),
		"segment":  w.ws + "/" + strings.Repeat("s", 300),
		"non-utf8": w.ws + "/\xff",
		"relative": "notes.txt",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := w.files.ReadFile(w.ctx(t), p, 0)
			var de *DeniedError
			if !errors.As(err, &de) || len(de.Reasons) == 0 {
				t.Fatalf("err = %v", err)
			}
		})
	}
	if _, err := w.files.Abs("", "x"); !errors.Is(err, ErrBadPath) {
		t.Errorf("relative without base: %v", err)
	}
	if got, err := w.files.Abs(w.ws, "sub/../notes.txt"); err != nil || got != w.ws+"/notes.txt" {
		t.Errorf("Abs = %q %v", got, err)
	}
}

func TestFileDecisionsAudited(t *testing.T) {
	w := newFSWorld(t)
	ctx := w.ctx(t)
	w.files.ReadFile(ctx, w.ws+"/notes.txt", 0)
	w.files.ReadFile(ctx, w.ws+"/.env", 0)
	lines := strings.Split(strings.TrimSpace(w.audit.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d records: %s", len(lines), w.audit)
	}
	for i, want := range []string{`"result":"allow"`, `"result":"deny"`} {
		for _, s := range []string{want, `"kind":"filesystem"`, `"parent_decision_id":"parent"`, `"tool":"reader"`, `"operation":"read"`} {
			if !strings.Contains(lines[i], s) {
				t.Errorf("record %d lacks %s: %s", i, s, lines[i])
			}
		}
	}
}

func FuzzPathDecision(f *testing.F) {
	for _, s := range []string{"notes.txt", "../outside/secret.txt", ".env", "sub/../../ws2/secret.txt", "a/./b//c", "%2e%2e/x", ".SSH/id_rsa", "\x00", "abs-out", "dir-out/secret.txt"} {
		f.Add(s)
	}
	w := newFSWorld(f)
	f.Fuzz(func(t *testing.T, rel string) {
		ctx := w.ctx(t)
		p := w.ws + "/" + rel
		data, err := w.files.ReadFile(ctx, p, 1<<16)
		if leaked(data) {
			t.Fatalf("ReadFile(%q) leaked a secret", p)
		}
		if err == nil && !bytes.Equal(data, []byte(allowedText)) {
			t.Fatalf("ReadFile(%q) = %q", p, data)
		}
		if real, err := w.files.Canonical(ctx, p, plugin.OpStat); err == nil && real != w.ws && !strings.HasPrefix(real, w.ws+"/") {
			t.Fatalf("Canonical(%q) = %q", p, real)
		}
		w.audit.Reset()
	})
}

var _ fs.FileInfo = nil

func engineFor(t testing.TB, pol *policy.Policy) *engine.Engine {
	t.Helper()
	cfg, err := engine.Builtin(pol.Data(), nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func auditTo(buf *bytes.Buffer) *audit.Logger { return audit.New(audit.NewWriterSink(buf), nil) }

// TestMutationsThroughInRootSymlinks: a symlink inside the workspace that
// leads to a denied directory must not let a delete, a mkdir or a write
// land there.
func TestMutationsThroughInRootSymlinks(t *testing.T) {
	w := newFSWorld(t)
	ctx := w.ctx(t)
	if err := os.MkdirAll(w.ws+"/.ssh/keys", 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(w.ws+"/.ssh/keys/token", []byte(sshSecret), 0o600)
	if err := os.Symlink(".ssh/keys", w.ws+"/keys-link"); err != nil {
		t.Fatal(err)
	}
	if err := w.files.Remove(ctx, w.ws+"/keys-link/token"); !errors.Is(err, ErrDenied) {
		t.Errorf("remove through the link: %v", err)
	}
	if _, err := os.Stat(w.ws + "/.ssh/keys/token"); err != nil {
		t.Errorf("the denied file was removed: %v", err)
	}
	if err := w.files.MkdirAll(ctx, w.ws+"/keys-link/new/deeper"); !errors.Is(err, ErrDenied) {
		t.Errorf("mkdir through the link: %v", err)
	}
	if _, err := os.Stat(w.ws + "/.ssh/keys/new"); err == nil {
		t.Error("a directory was created in the denied directory")
	}
	if err := w.files.WriteFile(ctx, w.ws+"/keys-link/planted", []byte("x")); !errors.Is(err, ErrDenied) {
		t.Errorf("write through the link: %v", err)
	}
	// The link itself can be removed: that touches only the workspace.
	if err := w.files.Remove(ctx, w.ws+"/keys-link"); err != nil {
		t.Errorf("remove the link itself: %v", err)
	}
	if _, err := os.Stat(w.ws + "/.ssh/keys"); err != nil {
		t.Errorf("removing the link removed its target: %v", err)
	}
	// A symlink as the last element of a write is replaced, not followed.
	os.Symlink("notes.txt", w.ws+"/alias")
	if err := w.files.WriteFile(ctx, w.ws+"/alias", []byte("new")); err == nil {
		t.Error("wrote through a symlink as the last element")
	}
	if data, _ := os.ReadFile(w.ws + "/notes.txt"); string(data) != allowedText {
		t.Errorf("notes.txt changed: %q", data)
	}
}

func TestSpecialFilesDoNotBlock(t *testing.T) {
	w := newFSWorld(t)
	fifo := w.ws + "/pipe"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan error, 3)
	go func() {
		_, err := w.files.Stat(w.ctx(t), fifo)
		done <- err
		_, err = w.files.ReadFile(w.ctx(t), fifo, 0)
		done <- err
		_, err = w.files.Canonical(w.ctx(t), fifo, plugin.OpList)
		done <- err
	}()
	for range 3 {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file or directory") {
				t.Errorf("FIFO: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("an operation on a FIFO blocked")
		}
	}
}
