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
		return m.Get(path, func(path string) (string, bool) {
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
		m.Get(path, func(string) (int, bool) { reads++; return 1, true })
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
		m.Get(path, func(string) (int, bool) { reads++; return 0, false })
	}
	if reads != 3 {
		t.Errorf("a failed read was remembered: %d reads for 3 calls", reads)
	}
}

// TestMemoKeepsTheValueOfTheFileRead: a path switched to another file
// while it is read (a symlink renamed over and back moves neither file's
// times) leaves no value under the identity of a file it was not read
// from: what is read is the file opened, and it is kept under that
// file's identity.
func TestMemoKeepsTheValueOfTheFileRead(t *testing.T) {
	defer SetRacyWindowForTest(0)()
	dir := t.TempDir()
	good, bad, link := filepath.Join(dir, "good"), filepath.Join(dir, "bad"), filepath.Join(dir, "prog")
	os.WriteFile(good, []byte("good"), 0o755)
	os.WriteFile(bad, []byte("bad!"), 0o755)
	retarget := func(to string) {
		tmp := link + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(to, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil { // atomic, as an attacker would
			t.Fatal(err)
		}
	}
	retarget(bad)
	var m Memo[string]
	read := func(p string) (string, bool) {
		data, err := os.ReadFile(p)
		return string(data), err == nil
	}
	// link -> bad at the stat and the open, -> good while it is read,
	// -> bad again after.
	m.Get(link, func(p string) (string, bool) {
		retarget(good)
		defer retarget(bad)
		return read(p)
	})
	if got := m.Get(link, read); got != "bad!" {
		t.Fatalf("the file at %s is %q, the memo answers %q (the content of another file)", link, "bad!", got)
	}
	// Switched for good: read again.
	retarget(good)
	if got := m.Get(link, read); got != "good" {
		t.Fatalf("after the switch the memo answers %q, want %q", got, "good")
	}
}

// GetIdentified names the file the value was read from, read or
// remembered, and knows none for a file that changed while it was read.
func TestGetIdentified(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prog")
	if err := os.WriteFile(path, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := func() Identity {
		t.Helper()
		id, ok := identify(path)
		if !ok {
			t.Fatal("no identity")
		}
		return id.export()
	}
	var m Memo[string]
	read := func(p string) (string, bool) {
		b, err := os.ReadFile(p)
		return string(b), err == nil
	}
	for _, step := range []string{"read", "again"} {
		v, id, ok := m.GetIdentified(path, read)
		if v != "one" || !ok || id != stat() {
			t.Errorf("%s: %q %+v %v, want the file's identity %+v", step, v, id, ok, stat())
		}
	}
	// A missing file has none.
	v, _, ok := m.GetIdentified(filepath.Join(dir, "other"), func(p string) (string, bool) {
		return "x", true
	})
	if ok || v != "x" {
		t.Errorf("a missing file: %q %v", v, ok)
	}
	// Written while it is read: no identity vouches for what was read.
	other := filepath.Join(dir, "grows")
	if err := os.WriteFile(other, []byte("a"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, ok = m.GetIdentified(other, func(p string) (string, bool) {
		f, err := os.OpenFile(other, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("b")
		f.Close()
		return "a", true
	})
	if ok {
		t.Error("a file written while it was read has an identity")
	}
}
