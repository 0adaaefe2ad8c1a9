package plugintest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// ErrOutside is returned by [DirFiles] for a path outside its roots.
var ErrOutside = errors.New("plugintest: path outside the allowed roots")

// DirFiles is a test filesystem door: it allows any operation on paths
// under Roots (absolute directories) and refuses the rest with
// ErrOutside. It does none of the real guard's policy evaluation, auditing
// or os.Root confinement; plugin tests use it to exercise their own logic,
// and the end-to-end tests exercise the real guard.
type DirFiles struct{ Roots []string }

var _ plugin.Files = DirFiles{}

func (d DirFiles) check(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q: path must be absolute", path)
	}
	clean := filepath.Clean(path)
	for _, r := range d.Roots {
		r = filepath.Clean(r)
		if clean == r || strings.HasPrefix(clean, r+string(filepath.Separator)) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", path, ErrOutside)
}

func (d DirFiles) Abs(base, p string) (string, error) {
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	if !filepath.IsAbs(base) {
		return "", fmt.Errorf("relative path %q needs an absolute base directory", p)
	}
	return filepath.Join(base, p), nil
}

func (d DirFiles) Check(_ context.Context, path string, _ plugin.Op) error { return d.check(path) }

func (d DirFiles) Canonical(_ context.Context, path string, _ plugin.Op) (string, error) {
	if err := d.check(path); err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	return real, d.check(real)
}

func (d DirFiles) Stat(_ context.Context, path string) (fs.FileInfo, error) {
	if err := d.check(path); err != nil {
		return nil, err
	}
	return os.Stat(path)
}

func (d DirFiles) ReadFile(_ context.Context, path string, _ int64) ([]byte, error) {
	if err := d.check(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

func (d DirFiles) WriteFile(_ context.Context, path string, data []byte) error {
	if err := d.check(path); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

func (d DirFiles) ReadDir(_ context.Context, path string) ([]fs.DirEntry, error) {
	if err := d.check(path); err != nil {
		return nil, err
	}
	return os.ReadDir(path)
}

func (d DirFiles) MkdirAll(_ context.Context, path string) error {
	if err := d.check(path); err != nil {
		return err
	}
	return os.MkdirAll(path, 0o700)
}

func (d DirFiles) Remove(_ context.Context, path string) error {
	if err := d.check(path); err != nil {
		return err
	}
	return os.Remove(path)
}

// ErrNoCommands is returned by [NoCommands].
var ErrNoCommands = errors.New("plugintest: no commands may run")

// NoCommands refuses every process.
type NoCommands struct{}

var _ plugin.Commands = NoCommands{}

func (NoCommands) Exec(context.Context, []string, plugin.ExecOptions) (*plugin.ExecResult, error) {
	return nil, ErrNoCommands
}
