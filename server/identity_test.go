package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// A session that began with initialize keeps the identity of its
// handshake: a request's _meta cannot rename the client or change the
// protocol version the policy sees.
func TestIdentityBoundToSession(t *testing.T) {
	h := newHarness(t, 5*time.Second)
	for name, meta := range map[string]mcp.Meta{
		"client-info-only": {
			"io.modelcontextprotocol/clientInfo": map[string]any{"name": "trusted-ci", "version": "1"},
		},
		"stateless-triple": {
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "trusted-ci", "version": "1"},
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientCapabilities": map[string]any{},
		},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"msg": "hi"}, Meta: meta})
			if err != nil {
				t.Fatal(err)
			}
			if res.IsError {
				t.Fatalf("call failed: %s", resultText(res))
			}
			h.dec.mu.Lock()
			in := h.dec.inputs[len(h.dec.inputs)-1].(ast.Object)
			h.dec.mu.Unlock()
			client := in.Get(ast.StringTerm("client")).Value.(ast.Object)
			if got := client.Get(ast.StringTerm("name")).Value; got.Compare(ast.String("unit")) != 0 {
				t.Errorf("policy saw client %v, want the handshake's \"unit\"", got)
			}
			if got := in.Get(ast.StringTerm("protocol_version")).Value; got.Compare(ast.String("2025-11-25")) != 0 {
				t.Errorf("policy saw protocol %v, want the negotiated 2025-11-25", got)
			}
			recs := h.aud.all()
			if rec := recs[len(recs)-2]; rec.Client == nil || rec.Client.Name != "unit" {
				t.Errorf("audit client = %+v", rec.Client)
			}
		})
	}
}

func TestDuplicateKeysRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		args string
		want string // "" means accepted
	}{
		"allow/distinct":           {`{"path":"a","paths":["b"]}`, ""},
		"allow/same-key-siblings":  {`{"a":{"k":1},"b":{"k":2}}`, ""},
		"allow/array-of-objects":   {`{"a":[{"k":1},{"k":2}]}`, ""},
		"deny/case":                {`{"path":"ok","PATH":"private.txt"}`, `keys "path" and "PATH" in the object at "/" differ only in case`},
		"deny/exact-duplicate":     {`{"path":"ok","path":"private.txt"}`, `key "path" appears twice`},
		"deny/nested":              {`{"opts":{"Mode":"r","mode":"w"}}`, `at "/opts"`},
		"deny/in-array":            {`{"a":[{},{"x":1,"X":2}]}`, `at "/a/1"`},
		"deny/kelvin-sign":         {"{\"k\":1,\"\u212a\":2}", "differ only in case"},
		"deny/long-s":              {"{\"s\":1,\"\u017f\":2}", "differ only in case"},
		"deny/escaped-same-string": {`{"a":1,"\u0061":2}`, `key "a" appears twice`},
	} {
		t.Run(name, func(t *testing.T) {
			err := checkKeys([]byte(tc.args))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A collision's message quotes the caller's keys and pointer bounded: it
// goes to the client and into the audit record's reasons, and a key may
// be as long as the message that carries it.
func TestDuplicateKeyErrorIsBounded(t *testing.T) {
	long := strings.Repeat("k", 200_000)
	for name, args := range map[string]string{
		"duplicate":      fmt.Sprintf(`{%q:1,%q:2}`, long, long),
		"case":           fmt.Sprintf(`{%q:1,%q:2}`, long, strings.ToUpper(long)),
		"under-long-key": fmt.Sprintf(`{%q:{%q:{"a":1,"A":2}}}`, long, long+"2"),
	} {
		t.Run(name, func(t *testing.T) {
			err := checkKeys([]byte(args))
			if !errors.Is(err, errKeyCollision) {
				t.Fatalf("err = %v, want a key collision", err)
			}
			msg := err.Error()
			if len(msg) > 1024 || !strings.Contains(msg, "(200000 bytes)") && !strings.Contains(msg, "…") {
				t.Fatalf("message of %d bytes: %.300s", len(msg), msg)
			}
		})
	}
	err := checkKeys([]byte(fmt.Sprintf(`{%q:{"a":1,"A":2}}`, long)))
	var ke *keyError
	if !errors.As(err, &ke) || ke.pointer != "/"+strings.Repeat("k", 64)+"…" {
		t.Fatalf("err = %.300v", err)
	}
}

// The policy and the handler see the same arguments: colliding keys are
// a validation error before any decision.
func TestPipelineRefusesCollidingKeys(t *testing.T) {
	h := newHarness(t, 5*time.Second)
	res, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"msg": "ok", "MSG": "other"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(resultText(res), "differ only in case") {
		t.Fatalf("got %v %q", res.IsError, resultText(res))
	}
	if h.dec.calls() != 0 {
		t.Errorf("the policy was asked %d times", h.dec.calls())
	}
	if rec := h.aud.last(); rec.Kind != audit.KindValidation || rec.Result != audit.ResultDeny {
		t.Errorf("record = %+v", rec)
	}
}

// keysPlain never passes what the decoder refuses: it says "no
// collision" only when walking the keys finds none.
func FuzzKeysPlain(f *testing.F) {
	for _, s := range []string{
		`{"path":"a","paths":["b"]}`, `{"a":{"k":1},"b":{"k":2}}`, `{"a":[{"k":1},{"k":2}]}`,
		`{"path":"ok","PATH":"x"}`, `{"path":"ok","path":"x"}`, `{"opts":{"Mode":"r","mode":"w"}}`,
		`{"a":[{},{"x":1,"X":2}]}`, "{\"k\":1,\"\u212a\":2}", `{"a":1,"\u0061":2}`,
		`{"s":"with \"quotes\" and \\ { [ ,"}`, `{"n":-1.5e3,"t":true,"f":false,"z":null}`, `[1,[2,{"a":[]}]]`,
		` { "a" : 1 , "b" : [ ] } `, `{"a":1}x`, `{"a" 1}`, `{"a":}`, `{"a":1,}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw := []byte(s)
		if !json.Valid(raw) {
			return // checkKeys sees only arguments that decoded
		}
		if keysPlain(raw) {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := walkKeys(dec, nil); err != nil {
				t.Fatalf("keysPlain(%s) = true, but the keys collide: %v", s, err)
			}
		}
	})
}

func TestKeysPlain(t *testing.T) {
	for s, want := range map[string]bool{
		`{"msg":"hello","n":1,"list":[1,"two",{"a":null}]}`: true,
		`{"a":{"k":1},"b":{"k":2}}`:                         true,
		`{"path":"ok","PATH":"x"}`:                          false,
		`{"a":[{},{"x":1,"X":2}]}`:                          false,
		`{"caf\u00e9":1}`:                                   false, // an escape: the decoder decides
		"{\"café\":1}":                                      false, // not ASCII
	} {
		if got := keysPlain([]byte(s)); got != want {
			t.Errorf("keysPlain(%s) = %v, want %v", s, got, want)
		}
	}
}
