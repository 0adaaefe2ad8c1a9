package engine

import (
	"fmt"
	"testing"

	"github.com/mcp-secure/mcp-secure/rego"
)

// TestMaskShortcutCoversBuiltin: the shortcut is on for the embedded
// modules, and off as soon as another module may add mask rules. If this
// fails after a change to rego/mcp/audit/audit.rego, review maskMayMatch
// against the new rules before updating builtinAuditSHA256.
func TestMaskShortcutCoversBuiltin(t *testing.T) {
	mods, err := rego.Modules()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		extra map[string]string
		user  map[string]string
		want  bool
	}{
		"builtin-only":       {want: true},
		"user-mask":          {user: map[string]string{"u.rego": "package mcp.audit\n\nmask contains \"/tool\" if input.tool == \"x\"\n"}, want: false},
		"user-other-package": {user: map[string]string{"u.rego": "package mcp.tools\n\ndeny contains \"no\" if input.tool == \"x\"\n"}, want: true},
		"extra-audit-module": {extra: map[string]string{"other/mask.rego": "package mcp.audit\n\nmask contains \"/tool\" if true\n"}, want: false},
		"changed-builtin":    {extra: map[string]string{builtinAuditModule: mods[builtinAuditModule] + "\nmask contains \"/tool\" if true\n"}, want: false},
	} {
		t.Run(name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range mods {
				m[k] = v
			}
			for k, v := range tc.extra {
				m[k] = v
			}
			e, err := New(t.Context(), Config{Modules: m, UserModules: tc.user, Data: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.snap.Load().c.builtinMasks; got != tc.want {
				t.Errorf("shortcut on = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMaskShortcutAgreesWithRules: for every record, the shortcut says
// "may match" whenever the built-in rules, fully evaluated, return a mask.
func TestMaskShortcutAgreesWithRules(t *testing.T) {
	e := maskEngine(t, "")
	if !e.snap.Load().c.builtinMasks {
		t.Fatal("shortcut is off for the built-in modules")
	}
	full := *e.snap.Load()
	fc := *full.c
	fc.builtinMasks = false
	full.c = &fc
	slow := &Engine{}
	slow.snap.Store(&full)
	kinds := []string{"tool_call", "validation", "rate_limit", "command", "tool_result", "network", "filesystem", ""}
	tools := []any{"write_file", "WRITE", "search", "", nil, 7, map[string]any{"truncated": true}}
	inputs := []any{
		nil, "text", []any{1},
		map[string]any{},
		map[string]any{"argv": []any{"cat"}},
		map[string]any{"argv": []any{"cat"}, "stdin": "x"},
		map[string]any{"env": map[string]any{"A": "1"}},
		map[string]any{"arguments": nil},
		map[string]any{"arguments": "content"},
		map[string]any{"arguments": map[string]any{"path": "/w/a"}},
		map[string]any{"arguments": map[string]any{"content": "body"}},
		map[string]any{"arguments": map[string]any{"content": 5}},
		map[string]any{"tool": "write_file", "arguments": map[string]any{"content": "body"}},
	}
	n := 0
	for _, k := range kinds {
		for _, tool := range tools {
			for _, in := range inputs {
				rec := map[string]any{"kind": k, "decision_id": "d"}
				if tool != nil {
					rec["tool"] = tool
				}
				if in != nil {
					rec["input"] = in
				}
				want, err := slow.Mask(t.Context(), rec)
				if err != nil {
					t.Fatal(err)
				}
				got, err := e.Mask(t.Context(), rec)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("record %v: shortcut gives %v, rules give %v", rec, got, want)
				}
				if len(want) > 0 {
					n++
					if !maskMayMatch(rec) {
						t.Errorf("record %v matches %v but maskMayMatch says no", rec, want)
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no record matched a built-in mask: the table tests nothing")
	}
}
