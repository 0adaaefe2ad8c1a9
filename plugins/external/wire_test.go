package external

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

func TestDecodeResponse(t *testing.T) {
	for name, c := range map[string]struct {
		in      string
		text    string
		isError bool
		want    string // error
	}{
		"ok/text":          {`{"content":[{"type":"text","text":"hi"}]}`, "hi", false, ""},
		"ok/two-items":     {`{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"isError":false}`, "a\nb", false, ""},
		"ok/is-error":      {`{"content":[{"type":"text","text":"no"}],"isError":true}`, "no", true, ""},
		"ok/empty-content": {`{"content":[]}` + "\n", "", false, ""},
		"ok/structured":    {`{"content":[],"structuredContent":{"a":1}}`, "", false, ""},
		"fail/empty":       {"", "", false, "nothing on stdout"},
		"fail/garbage":     {"hello", "", false, "not a JSON object"},
		"fail/array":       {`[1]`, "", false, "not a JSON object"},
		"fail/no-content":  {`{"isError":true}`, "", false, `no "content" list`},
		"fail/image":       {`{"content":[{"type":"image","data":"x"}]}`, "", false, "not a text item"},
		"fail/no-text":     {`{"content":[{"type":"text"}]}`, "", false, "not a text item"},
		"fail/trailing":    {`{"content":[]} {"content":[]}`, "", false, "more than one JSON value"},
		"fail/is-error":    {`{"content":[],"isError":"yes"}`, "", false, "not a JSON object"},
		"fail/structured":  {`{"content":[],"structuredContent":[1]}`, "", false, "structuredContent is not an object"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := decodeResponse([]byte(c.in))
			if c.want != "" {
				if !errors.Is(err, errBadOutput) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v, want %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Text != c.text || r.IsError != c.isError {
				t.Errorf("got %q/%v, want %q/%v", r.Text, r.IsError, c.text, c.isError)
			}
		})
	}
}

func TestEncodeRequestIsOneLine(t *testing.T) {
	b, err := encodeRequest(&plugin.Call{Tool: "t", Arguments: json.RawMessage("{\n \"a\": \"x\\ny\"\n}")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") || string(b) != `{"tool":"t","arguments":{"a":"x\ny"}}` {
		t.Errorf("request %q", b)
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"content":[{"type":"text","text":"hi"}],"isError":true}`))
	f.Add([]byte(`{"content":[],"structuredContent":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeResponse(data)
		if err == nil && r == nil {
			t.Fatal("nil result without error")
		}
	})
}

func TestLimited(t *testing.T) {
	l := &limited{n: 4}
	l.Write([]byte("ab"))
	l.Write([]byte("cdef"))
	if l.buf.String() != "abcd" || l.dropped != 2 {
		t.Errorf("kept %q, dropped %d", l.buf.String(), l.dropped)
	}
}
