package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mcp-secure/mcp-secure/rego"
)

func policyExportCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newSubcommand("policy export", "[--policy FILE] [-o DIR]", `
Writes what the server runs, for opa test, opa eval, Regal and editors:
  DIR/rego/mcp/...         the built-in modules (embedded in this binary)
  DIR/user/...             the policy's own modules (rego.modules)
  DIR/data.json            the compiled data document (data.mcp.policy)
  DIR/capabilities.json    the built-ins policies may call
Then, for example:
  opa test DIR my-tests/
  opa eval -d DIR -i input.json data.mcp.tools.decision
  opa check --strict --capabilities DIR/capabilities.json DIR`, stdout)
	var file, dir string
	policyFlag(c, &file)
	c.fs.StringVar(&dir, "o", "mcp-secure-policy", "write into `dir` (created if missing)")
	c.fs.StringVar(&dir, "out", "mcp-secure-policy", "write into `dir` (created if missing)")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	chk, err := checkPolicy(ctx, file)
	if err != nil {
		return err
	}
	files := map[string][]byte{"capabilities.json": rego.Capabilities()}
	if files["data.json"], err = dataDocument(chk.cfg.Data); err != nil {
		return err
	}
	for name, src := range chk.cfg.Modules {
		files[filepath.FromSlash(name)] = []byte(src)
	}
	used := map[string]bool{}
	for _, path := range slices.Sorted(maps.Keys(chk.cfg.UserModules)) {
		base := filepath.Base(path)
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s_%d.rego", strings.TrimSuffix(base, ".rego"), i)
		}
		used[name] = true
		files[filepath.Join("user", name)] = []byte(chk.cfg.UserModules[path])
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("policy export: %w", err)
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return fmt.Errorf("policy export: %w", err)
		}
	}
	_, err = fmt.Fprintf(stdout, "%s: %d built-in modules, %d user modules, data.json, capabilities.json\n", dir, len(chk.cfg.Modules), len(chk.cfg.UserModules))
	return err
}
