package engine

import (
	"fmt"
	"sync"

	"github.com/mcp-secure/mcp-secure/rego"
)

// restricted is rego.Restricted, made once and shared by every
// configuration of Builtin (nothing modifies capabilities): one pointer
// says a configuration has them (see Prebuild).
var restricted = sync.OnceValue(rego.Restricted)

// Builtin is the configuration the server runs: the embedded built-in
// modules under the restricted capabilities (rego.Restricted), the
// policy's data document, and the user's modules, which may only tighten.
func Builtin(data map[string]any, user map[string]string) (Config, error) {
	mods, err := rego.Modules()
	if err != nil {
		return Config{}, fmt.Errorf("%w: built-in modules: %w", ErrCompile, err)
	}
	return Config{Modules: mods, UserModules: user, Data: data, Capabilities: restricted()}, nil
}
