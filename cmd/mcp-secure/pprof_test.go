package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// gzipMagic starts every pprof profile file.
var gzipMagic = []byte{0x1f, 0x8b}

func TestStartProfiles(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	t.Setenv(profileEnv, strings.Join([]string{
		"cpu:" + file("cpu"), "mem:" + file("mem"), "block:" + file("block"),
		"mutex:" + file("mutex"), "trace:" + file("trace"), "bogus:" + file("bogus"), "nocolon",
	}, ","))
	t.Cleanup(func() {
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	})
	var stderr bytes.Buffer
	stop := startProfiles(&stderr)
	sink := 0
	for i := range 100_000 {
		sink += len(strings.Repeat("x", i%64))
	}
	_ = sink
	stop()

	for _, name := range []string{"cpu", "mem", "block", "mutex"} {
		data, err := os.ReadFile(file(name))
		if err != nil {
			t.Errorf("%s profile: %v", name, err)
			continue
		}
		if !bytes.HasPrefix(data, gzipMagic) {
			t.Errorf("%s profile is not a gzipped pprof file (%d bytes)", name, len(data))
		}
	}
	if data, err := os.ReadFile(file("trace")); err != nil || !bytes.HasPrefix(data, []byte("go 1.")) {
		t.Errorf("trace: %v, starts %q", err, data[:min(len(data), 8)])
	}
	if _, err := os.Stat(file("bogus")); err == nil {
		t.Error("an unknown profile kind wrote a file")
	}
	for _, want := range []string{`unknown profile "bogus"`, `want KIND:FILE, got "nocolon"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestStartProfilesUnset(t *testing.T) {
	t.Setenv(profileEnv, "")
	var stderr bytes.Buffer
	startProfiles(&stderr)()
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want nothing", stderr.String())
	}
}

// TestE2EProfileEnv runs the real binary with MCP_SECURE_PPROF and checks
// that the profiles are written when its input ends.
func TestE2EProfileEnv(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	cmd := exec.Command(binPath, "serve")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir+"/.config", "XDG_STATE_HOME="+dir+"/.state",
		profileEnv+"=cpu:"+cpu+",mem:"+mem)
	cmd.Stdin = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("server: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"protocolVersion":"2025-11-25"`) {
		t.Errorf("no initialize answer: %s", stdout.String())
	}
	for _, f := range []string{cpu, mem} {
		data, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(data, gzipMagic) {
			t.Errorf("%s: %v (%d bytes)", f, err, len(data))
		}
	}
}
