package server

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// noLoader refuses every external reference: a tool's schema must be
// self-contained, so compiling it never reads a file or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema reference %q: external references are not allowed", url)
}

// compileSchema compiles a tool's input schema (draft 2020-12 unless the
// schema names another draft) once, at registration.
func compileSchema(tool string, raw []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("tool %q: input schema is not JSON: %w", tool, err)
	}
	obj, ok := doc.(map[string]any)
	if !ok || obj["type"] != "object" {
		return nil, fmt.Errorf("tool %q: input schema must be an object schema with \"type\": \"object\"", tool)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	url := "mem://mcp-secure/tools/" + tool + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("tool %q: %w", tool, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("tool %q: input schema: %w", tool, err)
	}
	return s, nil
}

var printer = message.NewPrinter(language.English)

// schemaViolation describes the first leaf failure of a validation error:
// the JSON pointer of the offending value, the failing keyword and a
// message.
type schemaViolation struct {
	Pointer string `json:"pointer"`
	Keyword string `json:"keyword"`
	Message string `json:"message"`
}

func violationOf(err error) schemaViolation {
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
