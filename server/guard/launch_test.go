//go:build unix

package guard

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

func TestNarrowPaths(t *testing.T) {
	for name, c := range map[string]struct {
		roots, paths, want []string
	}{
		"none-asked":        {[]string{"/ws"}, []string{}, nil},
		"path-below-root":   {[]string{"/ws"}, []string{"/ws/data"}, []string{"/ws/data"}},
		"root-below-path":   {[]string{"/ws/a", "/other"}, []string{"/ws"}, []string{"/ws/a"}},
		"same":              {[]string{"/ws"}, []string{"/ws"}, []string{"/ws"}},
		"disjoint":          {[]string{"/ws"}, []string{"/etc"}, nil},
		"prefix-not-parent": {[]string{"/ws"}, []string{"/wsx"}, nil},
		"relative-ignored":  {[]string{"/ws"}, []string{"ws"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, narrowPaths(c.roots, c.paths)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestInterpreterChain(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sh, _ := filepath.EvalSymlinks("/bin/sh")
	env, _ := filepath.EvalSymlinks("/usr/bin/env")
	for name, c := range map[string]struct {
		file string
		want []string
		err  string
	}{
		"binary":      {sh, []string{sh}, ""},
		"sh-script":   {write("a", "#!/bin/sh\n"), []string{filepath.Join(dir, "a"), sh}, ""},
		"env-script":  {write("b", "#!/usr/bin/env sh\n"), []string{filepath.Join(dir, "b"), env, sh}, ""},
		"env-options": {write("c", "#!/usr/bin/env -S sh -x\n"), nil, "name one program"},
		"relative":    {write("d", "#!sh\n"), nil, "not an absolute path"},
		"missing":     {write("e", "#!/nonexistent/interp\n"), nil, "no executable file there"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := interpreterChain(c.file)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLaunch starts a plugin program through the door: it runs with only
// the environment asked for, in its directory, and Kill ends it.
func TestLaunch(t *testing.T) {
	w := newExecWorld(t, "")
	plug := filepath.Join(w.dir, "plug")
	os.MkdirAll(plug, 0o755)
	script := filepath.Join(plug, "run")
	os.WriteFile(script, []byte("#!/bin/sh\nread line\necho \"got=$line pwd=$(pwd) v=$V home=$HOME\"\nwhile :; do :; done\n"), 0o755)
	spec := &plugin.LaunchSpec{Plugin: "p", Dir: plug, Path: script, Args: []string{script}, Env: map[string]string{"V": "x"}}
	desc, err := w.cmds.LaunchConfinement(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(desc, "read and execute "+plug) {
		t.Errorf("confinement %q", desc)
	}
	p, err := w.cmds.Launch(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(p.Stdin(), "hello\n")
	buf := make([]byte, 200)
	done := make(chan string, 1)
	go func() {
		n, _ := p.Stdout().Read(buf)
		done <- string(buf[:n])
	}()
	select {
	case out := <-done:
		if want := "got=hello pwd=" + plug + " v=x home=/nonexistent"; !strings.HasPrefix(out, want) {
			t.Errorf("output %q, want %q", out, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no output")
	}
	p.Kill()
	waited := make(chan int, 1)
	go func() { code, _ := p.Wait(); waited <- code }()
	select {
	case code := <-waited:
		if code == 0 {
			t.Errorf("a killed process exited 0")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Kill did not end the process")
	}

	t.Run("refused-env", func(t *testing.T) {
		bad := *spec
		bad.Env = map[string]string{"LD_PRELOAD": "/x.so"}
		if _, err := w.cmds.LaunchConfinement(&bad); err == nil || !strings.Contains(err.Error(), "LD_PRELOAD") {
			t.Errorf("LD_PRELOAD: %v", err)
		}
	})
	t.Run("narrowed", func(t *testing.T) {
		n := *spec
		n.Paths, n.Ports = &[]string{}, &[]int{}
		tg, err := w.cmds.launchTarget(t.Context(), &n)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(tg.ReadWrite, w.ws) || len(tg.ConnectTCP) != 0 {
			t.Errorf("narrowed rules: rw %v tcp %v", tg.ReadWrite, tg.ConnectTCP)
		}
	})
}
