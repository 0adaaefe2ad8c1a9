package server

import (
	"errors"
	"sync"

	"github.com/mcp-secure/mcp-secure/server/jsonschema"
	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// toolSchema is a tool's input schema, compiled on its first use: a
// session calls few of the tools, and compiling every schema held up the
// start. A schema that does not compile fails every validation with the
// compiler's error, so no call of its tool runs.
type toolSchema struct {
	compile func() (*plugin.Schema, error)
}

func newToolSchema(tool string, raw []byte) *toolSchema {
	return &toolSchema{compile: sync.OnceValues(func() (*plugin.Schema, error) {
		return plugin.CompileSchema(tool, raw)
	})}
}

// Validate validates v against the schema, compiling it first if need be.
func (s *toolSchema) Validate(v any) error {
	sch, err := s.compile()
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// schemaViolation describes the first failure of a validation: the JSON
// pointer of the offending value, the failing keyword and a message.
type schemaViolation struct {
	Pointer string `json:"pointer"`
	Keyword string `json:"keyword"`
	Message string `json:"message"`
}

func violationOf(err error) schemaViolation {
	var ke *keyError
	if errors.As(err, &ke) {
		return schemaViolation{Pointer: ke.pointer, Keyword: "duplicateKey", Message: ke.Error()}
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return schemaViolation{Pointer: "", Keyword: "", Message: err.Error()}
	}
	return schemaViolation{Pointer: ve.Pointer, Keyword: ve.Keyword, Message: ve.Message}
}
