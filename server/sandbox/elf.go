package sandbox

import (
	"debug/elf"
	"path/filepath"
	"strings"
)

// Executables are paths with the dynamic loader each needs, for
// Rules.Exec: what the child may execute.
func Executables(paths ...string) []string {
	var out []string
	add := func(p string) {
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		add(p)
		if l := Interpreter(p); l != "" {
			add(l)
		}
	}
	return out
}

// Interpreter is the dynamic loader an ELF executable names (PT_INTERP),
// which must be executable in the sandbox for the executable to start;
// "" for a static executable or a file that is not ELF.
func Interpreter(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		buf := make([]byte, min(p.Filesz, 4096))
		if _, err := p.ReadAt(buf, 0); err != nil {
			return ""
		}
		s := strings.TrimRight(string(buf), "\x00")
		if !filepath.IsAbs(s) {
			return ""
		}
		return filepath.Clean(s)
	}
	return ""
}
