package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// fastCases are messages for the transport's fast forms: each must give
// what the general code gives, whether or not the fast form takes it.
var fastCases = []string{
	`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":"a-b","method":"tools/call","params":{"name":"t","arguments":{"x":[1,{"y":"}"}]}}}`,
	` { "jsonrpc" : "2.0" , "method" : "notifications/initialized" } `,
	`{"method":"x","jsonrpc":"2.0","id":-42,"params":[1,2]}`,
	`{"jsonrpc":"2.0","id":1.5,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":1e3,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":12345678901234567,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":null,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":true,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":"a\"b","method":"ping"}`,
	`{"jsonrpc":"2.0","id":1,"method":"p\u0069ng"}`,
	`{"jsonrpc":"2.0","id":1,"method":null}`,
	`{"jsonrpc":"2.0","id":1,"method":5}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
	`{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","params":null}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","params":"s"}`,
	`{"jsonrpc":"1.0","id":1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"Method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"result":{}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","extra":{"k":[1,2,"]"]}}`,
	`{"jsonrpc":"2.0","id":1,"method":""}`,
	`{"j\u0073onrpc":"2.0","id":1,"method":"a"}`,
	`{}`,
	`5`,
	`"str"`,
}

func TestDecodeRequestMatchesSDK(t *testing.T) {
	for _, line := range fastCases {
		checkDecode(t, []byte(line))
	}
}

func checkDecode(t *testing.T, line []byte) {
	t.Helper()
	if !json.Valid(line) || !utf8.Valid(line) {
		return // the transport refuses such a line before decoding it
	}
	want, werr := jsonrpc.DecodeMessage(bytes.TrimSpace(line))
	got, gerr := decodeMessage(bytes.TrimSpace(line))
	if errors.Is(gerr, errUnfaithfulID) {
		return // refused on purpose: the SDK would change the id (TestFaithfulID)
	}
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: error %v, SDK %v", line, gerr, werr)
	}
	if werr != nil {
		return
	}
	if !reflect.DeepEqual(normal(got), normal(want)) {
		t.Fatalf("%s:\n got %#v\nwant %#v", line, got, want)
	}
}

// normal makes empty and absent params compare equal.
func normal(m jsonrpc.Message) jsonrpc.Message {
	if r, ok := m.(*jsonrpc.Request); ok && len(r.Params) == 0 {
		c := *r
		c.Params = nil
		return &c
	}
	return m
}

func TestSpliceRequestIDMatchesGeneral(t *testing.T) {
	for _, params := range []string{
		``,
		`{}`,
		` { } `,
		`{"name":"t"}`,
		`{"name":"t","arguments":{"a":"{\"_meta\":1}"}}`,
		`{"_meta":{}}`,
		`{"_meta":{"progressToken":1},"name":"t"}`,
		`{"name":"t","_meta":{ "a" : [1,{"b":"}"}] } }`,
		`{"_meta":{"io.mcp-secure/request-id":"forged"}}`,
		`{"_meta":{"io.mcp-secure\/request-id":"forged"}}`,
		`{"_meta":null}`,
		`{"_meta":5}`,
		`{"name":"a","name":"b"}`,
		`{"n\u0061me":"a"}`,
		`[]`,
		`null`,
		`"x"`,
	} {
		for _, id := range []any{"7", "a<b", "ünï", `q"`, float64(12)} {
			jid, err := jsonrpc.MakeID(id)
			if err != nil {
				t.Fatal(err)
			}
			checkSplice(t, json.RawMessage(params), jid)
		}
	}
}

func checkSplice(t *testing.T, params json.RawMessage, id jsonrpc.ID) {
	t.Helper()
	if len(params) > 0 && (!json.Valid(params) || !utf8.Valid(params)) {
		return
	}
	got, ok := spliceRequestID(params, id)
	want, err := withRequestID(params, id)
	if !ok {
		return // the general form decides
	}
	if err != nil {
		t.Fatalf("%s: spliced %s, but the general form refuses it: %v", params, got, err)
	}
	if !json.Valid(got) {
		t.Fatalf("%s: spliced invalid JSON %s", params, got)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n spliced %s\n general %s", params, got, want)
	}
}

func TestAppendResponseMatchesSDK(t *testing.T) {
	for _, tc := range []struct {
		id     any
		result string
		err    error
	}{
		{float64(1), `{"content":[]}`, nil},
		{"abc", `{"tools":[{"name":"x","description":"a <b> & c"}]}`, nil},
		{"a\"b", `{}`, nil},
		{"ü", `{}`, nil},
		{float64(-3), `{}`, nil},
		{float64(4), ``, &jsonrpc.Error{Code: -1, Message: "m"}},
		{float64(5), "{\n}", nil},
	} {
		id, _ := jsonrpc.MakeID(tc.id)
		resp := &jsonrpc.Response{ID: id, Result: json.RawMessage(tc.result), Error: tc.err}
		want, err := jsonrpc.EncodeMessage(resp)
		if err != nil {
			t.Fatal(err)
		}
		if !responseFits(resp) {
			continue
		}
		if got := appendResponse(nil, resp); !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range fastCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		// The transport hands it only valid JSON, but it must not panic
		// on anything.
		decodeRequest(line)
		if id, err := jsonrpc.MakeID("x"); err == nil {
			spliceRequestID(line, id)
		}
		checkDecode(t, line)
		if req, ok := decodeRequest(bytes.TrimSpace(line)); ok && json.Valid(line) && req.ID.IsValid() {
			checkSplice(t, req.Params, req.ID)
		}
	})
}

// lineRecorder records each Write and can fail them.
type lineRecorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (r *lineRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	if r.fail != nil {
		return 0, r.fail
	}
	return r.buf.Write(p)
}

// String is what was written so far.
func (r *lineRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func TestLineWriterKeepsEveryLineWhole(t *testing.T) {
	rec := &lineRecorder{}
	w := newLineWriter(rec)
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				if err := w.writeLine([]byte(fmt.Sprintf(`{"g":%d,"i":%d,"pad":"%s"}`, g, i, strings.Repeat("x", i)))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(rec.buf.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		var m struct{ G, I int }
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("torn line %q", l)
		}
		if m.I != next[m.G] {
			t.Fatalf("writer %d: line %d after %d", m.G, m.I, next[m.G]-1)
		}
		next[m.G]++
	}
	t.Logf("%d lines in %d writes", len(got), rec.writes)
}

func TestLineWriterReportsErrors(t *testing.T) {
	boom := errors.New("boom")
	rec := &lineRecorder{fail: boom}
	w := newLineWriter(rec)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.writeLine([]byte(`{}`)); !errors.Is(err, boom) {
				t.Errorf("err = %v, want boom", err)
			}
		}()
	}
	wg.Wait()
}

// An id the answer could not carry back as sent is refused: a number
// that is not an integer within ±2^53, a string escaping a lone
// surrogate. Every other id is decoded as the SDK decodes it.
func TestFaithfulID(t *testing.T) {
	for id, refused := range map[string]bool{
		`1`: false, `-9007199254740992`: false, `9007199254740992`: false, `"a"`: false,
		`"\ud83d\ude00"`: false, `"\\ud800"`: false, `"\u00e9"`: false,
		`1.5`: true, `1e20`: true, `9007199254740993`: true, `-9007199254740993`: true, `123456789012345678901234567890`: true, `1.0`: true,
		`"\ud800"`: true, `"\udc00"`: true, `"x\ud800y"`: true, `"\ud800\u0041"`: true,
	} {
		line := []byte(`{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}`)
		_, err := decodeMessage(line)
		if got := errors.Is(err, errUnfaithfulID); got != refused {
			t.Errorf("id %s: refused %v (%v), want %v", id, got, err, refused)
		}
	}
}
