package server

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCollectAnnotations(t *testing.T) {
	schema := `{
	  "type": "object",
	  "$defs": {"file": {"type": "string", "format": "path", "x-mcp-operation": "write"}},
	  "properties": {
	    "src": {"type": "string", "format": "path"},
	    "dst": {"$ref": "#/$defs/file"},
	    "plain": {"type": "string"},
	    "nested": {"type": "object", "properties": {"deep": {"type": "object", "properties": {"url": {"type": "string", "format": "uri"}}}}},
	    "argv": {"type": "array", "prefixItems": [{"type": "string", "format": "command"}], "items": {"type": "string"}},
	    "paths": {"type": "array", "items": {"type": "string", "format": "path"}},
	    "either": {"anyOf": [{"type": "string", "format": "path", "x-mcp-operation": "delete"}, {"type": "integer"}]},
	    "map": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}}
	  }
	}`
	var doc map[string]any
	if err := json.Unmarshal([]byte(schema), &doc); err != nil {
		t.Fatal(err)
	}
	if !hasFormats(doc) {
		t.Fatal("hasFormats = false")
	}
	args := map[string]any{
		"src": "/a", "dst": "/b", "plain": "/not-checked",
		"nested": map[string]any{"deep": map[string]any{"url": "https://x.example/"}},
		"argv":   []any{"git", "--version"},
		"paths":  []any{"/p0", "/p1"},
		"either": "/gone",
		"map":    map[string]any{"k/1": "http://y.example/"},
		"SRC":    "/other-case",
	}
	got := collectAnnotations(doc, args)
	slices.SortFunc(got, func(a, b annotation) int {
		if a.pointer < b.pointer {
			return -1
		}
		return 1
	})
	want := []annotation{
		{FormatPath, "read", "/SRC", "/other-case"},
		{FormatCommand, "read", "/argv/0", "git"},
		{FormatPath, "write", "/dst", "/b"},
		{FormatPath, "delete", "/either", "/gone"},
		{FormatURI, "read", "/map/k~11", "http://y.example/"},
		{FormatURI, "read", "/nested/deep/url", "https://x.example/"},
		{FormatPath, "read", "/paths/0", "/p0"},
		{FormatPath, "read", "/paths/1", "/p1"},
		{FormatPath, "read", "/src", "/a"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(annotation{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var plain map[string]any
	json.Unmarshal([]byte(`{"type":"object","properties":{"q":{"type":"string","format":"email"}}}`), &plain)
	if hasFormats(plain) {
		t.Error("hasFormats true for a schema without checked formats")
	}
	// A self-referencing schema terminates.
	var loop map[string]any
	json.Unmarshal([]byte(`{"$ref":"#"}`), &loop)
	collectAnnotations(loop, map[string]any{"a": "b"})
}
