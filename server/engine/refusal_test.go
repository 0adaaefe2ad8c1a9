package engine

import (
	"errors"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Refusal asks only for the reasons and never allows, even what the
// policy would allow; it fails closed as Decide does.
func TestRefusal(t *testing.T) {
	cfg, err := Builtin(map[string]any{"tools": map[string]any{"allow_all": true}},
		map[string]string{"u.rego": "package mcp.tools\n\ndeny contains \"no ghosts\" if not input.registered\n"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		registered bool
		reason     string
	}{
		"deny/unregistered":      {false, "no ghosts"},
		"deny/allowed-by-policy": {true, ""},
	} {
		t.Run(name, func(t *testing.T) {
			in := ToolInput{Tool: "t", Registered: tc.registered, Arguments: ast.NewObject()}.Value()
			want, err := e.Decide(t.Context(), Tools, in)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Refusal(t.Context(), Tools, in)
			if err != nil || d.Allow {
				t.Fatalf("Refusal = %+v, %v; want a deny", d, err)
			}
			if tc.reason != "" {
				if want.Allow || len(d.Reasons) == 0 || d.Reasons[0] != tc.reason {
					t.Errorf("Refusal reasons %q, Decide %+v; want %q from both", d.Reasons, want, tc.reason)
				}
				if len(want.Reasons) != len(d.Reasons) {
					t.Errorf("Refusal reasons %q differ from Decide's %q", d.Reasons, want.Reasons)
				}
			} else if !want.Allow {
				t.Errorf("Decide = %+v, want an allow", want)
			}
		})
	}
	if _, err := e.Refusal(t.Context(), Point("nowhere"), ast.NewObject()); !errors.Is(err, ErrUnknownPoint) {
		t.Errorf("unknown point: %v", err)
	}
}
