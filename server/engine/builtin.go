package engine

import (
	"fmt"

	"github.com/mcp-secure/mcp-secure/rego"
)

// Builtin is the configuration the server runs: the embedded built-in
// modules under the restricted capabilities (rego.Restricted), the
// policy's data document, and the user's modules, which may only tighten.
func Builtin(data map[string]any, user map[string]string) (Config, error) {
	mods, err := rego.Modules()
	if err != nil {
		return Config{}, fmt.Errorf("%w: built-in modules: %w", ErrCompile, err)
	}
	return Config{Modules: mods, UserModules: user, Data: data, Capabilities: rego.Restricted()}, nil
}
