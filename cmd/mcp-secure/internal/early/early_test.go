package early

import (
	"strings"
	"testing"
)

func TestServes(t *testing.T) {
	for args, want := range map[string]bool{
		"":                                  true,
		"serve":                             true,
		"serve --policy p.yaml":             true,
		"--policy p.yaml":                   true,
		"-v":                                false,
		"--version":                         false,
		"-help":                             false,
		"policy check":                      false,
		"version":                           false,
		"__mcp-secure-sandbox-launcher__ x": false,
	} {
		var a []string
		if args != "" {
			a = strings.Fields(args)
		}
		if got := serves(a); got != want {
			t.Errorf("serves(%q) = %v, want %v", args, got, want)
		}
	}
}
