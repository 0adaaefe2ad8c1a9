package sandbox

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Executables are paths with the dynamic loader each needs, for
// Rules.Exec: what the child may execute.
func Executables(paths ...string) []string { return ExecutablesWith(Interpreter, paths...) }

// ExecutablesWith is Executables with loader in place of [Interpreter]
// (one that remembers what it read, say).
func ExecutablesWith(loader func(path string) string, paths ...string) []string {
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
		if l := loader(p); l != "" {
			add(l)
		}
	}
	return out
}

// Interpreter is the dynamic loader an ELF executable names (PT_INTERP),
// which must be executable in the sandbox for the executable to start;
// "" for a static executable or a file that is not ELF.
func Interpreter(path string) string {
	l, _ := ReadInterpreter(path)
	return l
}

// ReadInterpreter is Interpreter, with the error that kept it from
// reading the file (none for a file that is not ELF).
func ReadInterpreter(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return "", nil // not ELF, or not one Go reads: no loader to allow
		}
		return "", err
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		buf := make([]byte, min(p.Filesz, 4096))
		if _, err := p.ReadAt(buf, 0); err != nil {
			return "", err
		}
		s := strings.TrimRight(string(buf), "\x00")
		if !filepath.IsAbs(s) {
			return "", nil
		}
		return filepath.Clean(s), nil
	}
	return "", nil
}
