package plugin

import (
	"bytes"
	"fmt"

	"github.com/mcp-secure/mcp-secure/server/jsonschema"
)

// Schema is a compiled tool input schema.
type Schema = jsonschema.Schema

// CompileSchema compiles a tool's input schema (draft 2020-12 unless the
// schema names another draft). The schema must be self-contained: a
// $ref to another document is refused, so compiling never reads a file
// or the network.
func CompileSchema(tool string, raw []byte) (*Schema, error) {
	doc, err := jsonschema.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("tool %q: input schema is not JSON: %w", tool, err)
	}
	obj, ok := doc.(map[string]any)
	if !ok || obj["type"] != "object" {
		return nil, fmt.Errorf("tool %q: input schema must be an object schema with \"type\": \"object\"", tool)
	}
	s, err := jsonschema.CompileValue(doc)
	if err != nil {
		return nil, fmt.Errorf("tool %q: input schema: %w", tool, err)
	}
	return s, nil
}
