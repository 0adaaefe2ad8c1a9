package early

import (
	"fmt"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
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
		if cmd, _ := Command(a); (cmd == "serve") != want {
			t.Errorf("Command(%q) = %q, want serve %v", args, cmd, want)
		}
	}
}

func TestCommandRest(t *testing.T) {
	for args, want := range map[string]string{
		"serve --policy p.yaml": "serve [--policy p.yaml]",
		"--policy p.yaml":       "serve [--policy p.yaml]",
		"--version":             "version []",
		"-h serve":              "help [serve]",
		"policy check x":        "policy [check x]",
	} {
		cmd, rest := Command(strings.Fields(args))
		if got := fmt.Sprintf("%s %v", cmd, rest); got != want {
			t.Errorf("Command(%q) = %s, want %s", args, got, want)
		}
	}
}
