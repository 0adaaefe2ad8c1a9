package main

import (
	"path/filepath"
	"testing"
)

// The user's policy is looked for in $XDG_CONFIG_HOME, unless it is
// relative or empty: then in ~/.config, never below the working
// directory.
func TestUserPolicyPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct{ xdg, want string }{
		{"/etc/xdg-here", "/etc/xdg-here/mcp-secure/policy.yaml"},
		{"rel", filepath.Join(home, ".config", "mcp-secure", "policy.yaml")},
		{"", filepath.Join(home, ".config", "mcp-secure", "policy.yaml")},
	} {
		t.Setenv("XDG_CONFIG_HOME", tc.xdg)
		if got := userPolicyPath(); got != tc.want {
			t.Errorf("XDG_CONFIG_HOME=%q: %s, want %s", tc.xdg, got, tc.want)
		}
	}
}
