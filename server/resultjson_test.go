package server

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// tricky strings: every escape encoding/json makes, and what it leaves.
var trickyStrings = []string{
	"",
	"plain",
	`quote " and backslash \`,
	"controls \x00\x01\x07\b\f\n\r\t\x1f\x7f",
	"html <script>&amp;</script>",
	"unicode é ☃ 😀 \u2028 \u2029 \u2027 \u202a",
	"invalid \xff\xfe utf-8 \xc3",
	"truncated rune \xe2\x82",
	"\ufffd literal replacement",
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range trickyStrings {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString([]byte("x"), s); string(got[1:]) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got[1:], want)
		}
	})
}

type structured struct {
	A string   `json:"a"`
	B []string `json:"b,omitempty"`
}

func TestAppendCallResult(t *testing.T) {
	text := func(s string) mcp.Content { return &mcp.TextContent{Text: s} }
	var nilMap map[string]any
	var nilStrings []string
	cases := map[string]struct {
		res      *mcp.CallToolResult
		fallback bool // encoding/json must write it
	}{
		"empty/nil-content":   {res: &mcp.CallToolResult{Content: []mcp.Content{}}},
		"text/one":            {res: &mcp.CallToolResult{Content: []mcp.Content{text("hello")}}},
		"text/several":        {res: &mcp.CallToolResult{Content: []mcp.Content{text("a"), text(""), text("c")}}},
		"text/error":          {res: &mcp.CallToolResult{IsError: true, Content: []mcp.Content{text("call denied: <x> & \"y\"")}}},
		"structured/deny":     {res: errorWith("call to \"x\" denied", map[string]any{"error": "denied_by_policy", "kind": "tool", "target": "x\u2028", "reasons": []string{"r1", "r<2>"}})},
		"structured/nil-list": {res: errorWith("denied", map[string]any{"reasons": nilStrings, "empty": []string{}, "anys": []any{}})},
		"structured/nil-map":  {res: &mcp.CallToolResult{Content: []mcp.Content{text("x")}, StructuredContent: nilMap}},
		"structured/scalars": {res: &mcp.CallToolResult{Content: []mcp.Content{text("x")}, StructuredContent: map[string]any{
			"s": "v", "t": true, "f": false, "i": -42, "i64": int64(1 << 60), "n": nil, "float": 1.5e-7, "big": 1e21,
			"number": json.Number("12.50"), "raw": json.RawMessage(` {"a" : "<b>"} `),
		}}},
		"structured/nested": {res: &mcp.CallToolResult{Content: []mcp.Content{text("x")}, StructuredContent: map[string]any{
			"list":   []any{"a", 1, map[string]any{"z": 1, "a": []any{nil, true}}, []string{"q"}},
			"struct": structured{A: "<&>"},
			"ptr":    &structured{A: "a", B: []string{"b"}},
			"map":    map[string]int{"b": 2, "a": 1},
			"keys":   map[string]any{"é": 1, "E": 2, "\u2028": 3, "<": 4, "": 5},
		}}},
		"structured/struct-root": {res: &mcp.CallToolResult{Content: []mcp.Content{text("x")}, StructuredContent: structured{A: "a"}}},
		"structured/many-keys": {res: &mcp.CallToolResult{Content: []mcp.Content{text("x")}, StructuredContent: func() map[string]any {
			m := map[string]any{}
			for _, k := range []string{"q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "a", "s", "d", "f", "g", "h", "j", "k", "l", "z"} {
				m[k] = k
			}
			return m
		}()}},
		"strings": {res: func() *mcp.CallToolResult {
			r := &mcp.CallToolResult{}
			for _, s := range trickyStrings {
				r.Content = append(r.Content, text(s))
			}
			r.StructuredContent = map[string]any{"all": trickyStrings}
			return r
		}()},
		"fallback/meta":        {res: &mcp.CallToolResult{Meta: mcp.Meta{"k": "v"}, Content: []mcp.Content{text("x")}}, fallback: true},
		"fallback/image":       {res: &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: []byte("x"), MIMEType: "image/png"}}}, fallback: true},
		"fallback/text-meta":   {res: &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "x", Meta: mcp.Meta{"a": 1}}}}, fallback: true},
		"fallback/annotations": {res: &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "x", Annotations: &mcp.Annotations{Priority: 1}}}}, fallback: true},
		"fallback/state":       {res: &mcp.CallToolResult{Content: []mcp.Content{text("x")}, RequestState: "s"}, fallback: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(tc.res)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendCallResult([]byte("prefix"), tc.res)
			if ok == tc.fallback {
				t.Fatalf("appendCallResult took it: %v, want %v", ok, !tc.fallback)
			}
			if !ok {
				if string(got) != "prefix" {
					t.Errorf("a refused result appended %q", got)
				}
			} else if diff := cmp.Diff(string(want), string(got[len("prefix"):])); diff != "" {
				t.Errorf("appendCallResult differs from json.Marshal (-want +got):\n%s", diff)
			}
			// encodeCallResult writes what the SDK would, either way.
			if diff := cmp.Diff(string(want), string(encodeCallResult(tc.res))); diff != "" {
				t.Errorf("encodeCallResult differs from json.Marshal (-want +got):\n%s", diff)
			}
		})
	}
}

// errorWith is an error result with structured content.
func errorWith(msg string, sc any) *mcp.CallToolResult {
	r := errorResult(msg)
	r.StructuredContent = sc
	return r
}

func TestAppendCallResultUnencodable(t *testing.T) {
	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "x"}},
		StructuredContent: map[string]any{"f": func() {}}}
	if got, ok := appendCallResult(nil, res); ok {
		t.Fatalf("appendCallResult encoded a function: %s", got)
	}
	want, _ := json.Marshal(errorResult("the result could not be encoded"))
	if got := encodeCallResult(res); string(got) != string(want) {
		t.Errorf("encodeCallResult = %s, want %s", got, want)
	}
}

func BenchmarkEncodeCallResult(b *testing.B) {
	res := errorWith(`call to "no_such_tool" denied by policy: tool "no_such_tool" is not registered`,
		map[string]any{"error": "denied_by_policy", "kind": "tool", "target": "no_such_tool", "reasons": []string{`tool "no_such_tool" is not registered`}})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeCallResult(res)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(res); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestAppendRawMessage(t *testing.T) {
	for _, raw := range []string{
		`{"a":[1,2],"b":"x"}`, `{"count":2,"categories":[{"category":"discovery","tools":["a","b"]}]}`,
		` {"a" : 1} `, "{\"a\":\n1}", `{"s":"a \" b \\ c"}`, `{"s":"has space inside"}`,
		`{"h":"<b>"}`, `{"h":"a & b"}`, "{\"u\":\"\u2028\"}", `"\u003c"`, `12`, `null`, `[]`,
		"{\"bad\":\"\xff\"}",
	} {
		want, err := json.Marshal(json.RawMessage(raw))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendJSONValue([]byte("x"), json.RawMessage(raw))
		if !ok || string(got[1:]) != string(want) {
			t.Errorf("appendJSONValue(%q) = %q, %v; want %q", raw, got[1:], ok, want)
		}
	}
	// Accepted once, a message is compared next time: only the same
	// bytes pass without a scan.
	good := json.RawMessage(`{"a":[1,2]}`)
	for range 2 {
		if got, ok := appendJSONValue(nil, good); !ok || string(got) != string(good) {
			t.Errorf("appendJSONValue(%s) = %s, %v", good, got, ok)
		}
	}
	for _, raw := range []string{``, `{`, `{"a":}`, `{} {}`, `{"a":[1,2]`, `{"a":[1,2]}}`} {
		if got, ok := appendJSONValue(nil, json.RawMessage(raw)); ok {
			t.Errorf("appendJSONValue(%q) = %q, want a refusal", raw, got)
		}
	}
}
