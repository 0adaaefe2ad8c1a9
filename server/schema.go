package server

import (
	"errors"
	"strings"
	"sync"

	"github.com/mcp-secure/mcp-secure/server/plugin"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// toolSchema is a tool's input schema, compiled on its first use: a
// session calls few of the tools, and compiling every schema held up the
// start. A schema that does not compile fails every validation with the
// compiler's error, so no call of its tool runs.
type toolSchema struct {
	compile func() (*jsonschema.Schema, error)
}

func newToolSchema(tool string, raw []byte) *toolSchema {
	return &toolSchema{compile: sync.OnceValues(func() (*jsonschema.Schema, error) {
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

// schemaViolation describes the first leaf failure of a validation error:
// the JSON pointer of the offending value, the failing keyword and a
// message.
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
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	v := schemaViolation{Pointer: pointer(ve.InstanceLocation)}
	if ve.ErrorKind != nil {
		if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
			v.Keyword = kp[len(kp)-1]
		}
		v.Message = ve.ErrorKind.LocalizedString(printer)
	}
	return v
}

func pointer(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		b.WriteByte('/')
		tok = strings.ReplaceAll(tok, "~", "~0")
		b.WriteString(strings.ReplaceAll(tok, "/", "~1"))
	}
	return b.String()
}
