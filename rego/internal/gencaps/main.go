// Command gencaps filters OPA capabilities JSON on stdin down to the
// built-ins mcp-secure allows, and writes it to stdout.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/mcp-secure/mcp-secure/rego"
)

func main() {
	var caps map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&caps); err != nil {
		fmt.Fprintln(os.Stderr, "gencaps:", err)
		os.Exit(1)
	}
	builtins, _ := caps["builtins"].([]any)
	caps["builtins"] = slices.DeleteFunc(builtins, func(b any) bool {
		m, _ := b.(map[string]any)
		name, _ := m["name"].(string)
		return slices.Contains(rego.Forbidden, name)
	})
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(caps); err != nil {
		fmt.Fprintln(os.Stderr, "gencaps:", err)
		os.Exit(1)
	}
}
