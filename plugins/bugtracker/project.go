package bugtracker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// ProjectEnv names the project used when a call gives no project_path,
// and the base of a relative one.
const ProjectEnv = "MCP_PROJECT_PATH"

// resolveProject turns a call's project_path (or MCP_PROJECT_PATH) into
// the project's canonical path, through the host's filesystem door: the
// path is decided by the filesystem policy, symlinks are resolved, and it
// must be an existing directory. A policy denial comes back as an error
// wrapping the guard's, for the server to report; every other problem is
// a caller error.
func (t *tracker) resolveProject(ctx context.Context, arg string) (string, error) {
	p := strings.TrimSpace(arg)
	from := "project_path"
	if p == "" {
		p, from = t.projectEnv, ProjectEnv
	}
	if p == "" {
		return "", ErrNoProject
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: %s contains a NUL byte", ErrBadProject, from)
	}
	files := t.host.Files()
	if !filepath.IsAbs(p) {
		base := t.projectEnv
		if from == ProjectEnv || !filepath.IsAbs(base) {
			return "", fmt.Errorf("%w: %s %q is relative; give an absolute path (a relative project_path is resolved against %s, which is not set to an absolute directory)", ErrBadProject, from, p, ProjectEnv)
		}
		abs, err := files.Abs(base, p)
		if err != nil {
			return "", fmt.Errorf("project path %q: %w", p, err)
		}
		p = abs
	}
	canon, err := files.Canonical(ctx, p, plugin.OpList)
	if err != nil {
		return "", pathError(p, err)
	}
	fi, err := files.Stat(ctx, canon)
	if err != nil {
		return "", pathError(canon, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %s is not a directory", ErrBadProject, canon)
	}
	return canon, nil
}

// pathError keeps a missing path a caller error and passes everything
// else (policy denials first of all) up wrapped.
func pathError(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s does not exist", ErrBadProject, p)
	}
	return fmt.Errorf("project path %s: %w", p, err)
}
