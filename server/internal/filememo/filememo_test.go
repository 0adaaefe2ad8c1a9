//go:build linux

package filememo

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMemo(t *testing.T) {
	old := racyWindow
	racyWindow = 0
	t.Cleanup(func() { racyWindow = old })
	dir := t.TempDir()
	path := filepath.Join(dir, "prog")
	write := func(content string) {
		t.Helper()
		// File times are as coarse as a clock tick: sleep past one, so
		// that a rewrite of the same size is told apart.
		time.Sleep(20 * time.Millisecond)
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var m Memo[string]
	reads := 0
	get := func() string {
		return m.Get(path, func() (string, bool) {
			reads++
			data, err := os.ReadFile(path)
			return string(data), err == nil
		})
	}
	steps := []struct {
		name  string
		do    func()
		want  string
		reads int
	}{
		{"read/first", func() { write("#!/bin/sh") }, "#!/bin/sh", 1},
		{"remembered/unchanged", func() {}, "#!/bin/sh", 1},
		{"read/rewritten-same-size", func() { write("#!/bin/xx") }, "#!/bin/xx", 2},
		{"remembered/after-rewrite", func() {}, "#!/bin/xx", 2},
		{"read/other-size", func() { write("#!/usr/bin/env python3") }, "#!/usr/bin/env python3", 3},
		{"read/replaced-by-rename", func() {
			tmp := filepath.Join(dir, "new")
			os.WriteFile(tmp, []byte("#!/bin/ab"), 0o755)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, "#!/bin/ab", 4},
		{"read/chmod", func() { time.Sleep(20 * time.Millisecond); os.Chmod(path, 0o700) }, "#!/bin/ab", 5},
		{"read/gone", func() { os.Remove(path) }, "", 6},
		{"read/gone-again", func() {}, "", 7},
	}
	for _, s := range steps {
		s.do()
		if got := get(); got != s.want || reads != s.reads {
			t.Errorf("%s: got %q after %d reads, want %q after %d", s.name, got, reads, s.want, s.reads)
		}
	}
}

func TestMemoSkipsRecentFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	os.WriteFile(path, []byte("x"), 0o755)
	var m Memo[int]
	reads := 0
	for range 3 {
		m.Get(path, func() (int, bool) { reads++; return 1, true })
	}
	if reads != 3 {
		t.Errorf("a file changed %v ago was remembered: %d reads for 3 calls", racyWindow, reads)
	}
}

func TestMemoForgetsFailedReads(t *testing.T) {
	old := racyWindow
	racyWindow = 0
	t.Cleanup(func() { racyWindow = old })
	path := filepath.Join(t.TempDir(), "prog")
	os.WriteFile(path, []byte("x"), 0o755)
	var m Memo[int]
	reads := 0
	for range 3 {
		m.Get(path, func() (int, bool) { reads++; return 0, false })
	}
	if reads != 3 {
		t.Errorf("a failed read was remembered: %d reads for 3 calls", reads)
	}
}
