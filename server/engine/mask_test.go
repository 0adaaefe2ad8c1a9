package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-secure/mcp-secure/rego"
	"github.com/mcp-secure/mcp-secure/server/audit"
)

var _ audit.Masker = (*Engine)(nil)

func maskEngine(t *testing.T, user string) *Engine {
	t.Helper()
	mods, err := rego.Modules()
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		mods["user/mask.rego"] = user
	}
	e, err := New(t.Context(), Config{Modules: mods, Data: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestMask(t *testing.T) {
	user := `package mcp.audit

mask contains "/input/arguments/ssn" if input.tool == "hr_lookup"

mask contains {"op": "upsert", "path": "/input/arguments/query", "value": "[masked by policy]"} if {
	input.kind == "tool_call"
	input.tool == "hr_lookup"
}
`
	e := maskEngine(t, user)
	for _, tc := range []struct {
		name   string
		record map[string]any
		want   []string
	}{
		{"user/erase-and-upsert", map[string]any{"kind": "tool_call", "tool": "hr_lookup", "input": map[string]any{"arguments": map[string]any{"ssn": "1", "query": "q"}}},
			[]string{`"/input/arguments/ssn"`, `{"op":"upsert","path":"/input/arguments/query","value":"[masked by policy]"}`}},
		{"builtin/command-stdin", map[string]any{"kind": "command", "input": map[string]any{"argv": []any{"cat"}, "stdin": "x"}},
			[]string{`"/input/stdin"`}},
		{"none/other-tool", map[string]any{"kind": "tool_call", "tool": "search", "input": map[string]any{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Mask(t.Context(), tc.record)
			if err != nil {
				t.Fatal(err)
			}
			var enc []string
			for _, g := range got {
				b, _ := json.Marshal(g)
				enc = append(enc, string(b))
			}
			slices.Sort(enc)
			if fmt.Sprint(enc) != fmt.Sprint(tc.want) {
				t.Errorf("Mask = %v, want %v", enc, tc.want)
			}
		})
	}
}

// TestMaskThroughLogger: the engine's masks applied by the audit Logger;
// a failing user mask erases the whole input.
func TestMaskThroughLogger(t *testing.T) {
	// Two values for one complete rule: an evaluation error that is not a
	// built-in's (those leave a rule undefined).
	failing := `package mcp.audit

which := 1 if input.kind == "tool_call"

which := 2 if input.tool == "not-a-number"

mask contains "/input/arguments/path" if which == 1
`
	for _, tc := range []struct {
		name, module, tool string
		gone, kept         []string
	}{
		{"builtin/write-content", "", "write_file", []string{"file body"}, []string{`"masked":["/input/arguments/content"]`, `"chars":9`}},
		{"error/fails-closed", failing, "not-a-number", []string{"file body", `"/w/a"`}, []string{`"erased":["/input"]`, "mask_error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := audit.New(audit.NewWriterSink(&buf), &audit.Options{Masker: maskEngine(t, tc.module)})
			err := l.Log(context.Background(), audit.Record{DecisionID: "d", Kind: audit.KindToolCall, Tool: tc.tool, Result: audit.ResultAllow,
				Input: map[string]any{"arguments": map[string]any{"path": "/w/a", "content": "file body"}}})
			if err != nil {
				t.Fatal(err)
			}
			line := buf.String()
			for _, g := range tc.gone {
				if strings.Contains(line, g) {
					t.Errorf("record keeps %s: %s", g, line)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(line, k) {
					t.Errorf("record lacks %s: %s", k, line)
				}
			}
		})
	}
}

func TestMaskEvalErrorWrapsErrEval(t *testing.T) {
	e := maskEngine(t, `package mcp.audit

which := 1 if input.tool == "abc"

which := 2 if input.tool != ""

mask contains "/input" if which == 1
`)
	if _, err := e.Mask(t.Context(), map[string]any{"tool": "abc"}); !errors.Is(err, ErrEval) {
		t.Errorf("err = %v, want ErrEval", err)
	}
}

// A built-in that fails on a value the client chose leaves its mask rule
// undefined: a client cannot make the masks fail and erase a record.
func TestMaskBuiltinErrorOnClientValue(t *testing.T) {
	e := maskEngine(t, `package mcp.audit

mask contains "/input/arguments/n" if to_number(input.input.arguments.n) > 5
`)
	for n, want := range map[string]int{"7": 1, "3": 0, "abc": 0} {
		got, err := e.Mask(t.Context(), map[string]any{"kind": "tool_call", "input": map[string]any{"arguments": map[string]any{"n": n}}})
		if err != nil || len(got) != want {
			t.Errorf("n=%q: masks %v, err %v; want %d masks and no error", n, got, err, want)
		}
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkLogWithMasks is one audit record of a 1 KiB input through the
// built-in mask rules: the cost the engine's masks add to a record.
func BenchmarkLogWithMasks(b *testing.B) {
	mods, err := rego.Modules()
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(context.Background(), Config{Modules: mods, Data: map[string]any{}})
	if err != nil {
		b.Fatal(err)
	}
	l := audit.New(audit.NewWriterSink(discardWriter{}), &audit.Options{Masker: e})
	rec := audit.Record{DecisionID: audit.NewID(), Kind: audit.KindToolCall, Tool: "create_bug", Result: audit.ResultAllow,
		Input: map[string]any{"tool": "create_bug", "arguments": map[string]any{
			"title": "Crash when saving", "description": strings.Repeat("Steps: open the editor, type a long name, press save. ", 16),
			"labels": []any{"bug", "editor"}}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Log(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
}
