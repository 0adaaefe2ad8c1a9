package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Placeholders the snippets in examples/clients use for the paths a user
// fills in.
const (
	placeholderBin    = "/absolute/path/to/bin/mcp-secure"
	placeholderPolicy = "/absolute/path/to/policy.yaml"
)

// clientServer is one stdio server entry of a client configuration file.
type clientServer struct {
	Type    string            `json:"type,omitempty"`
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
}

// TestClientConfigs checks the snippets in examples/clients: each parses,
// names the binary and `serve --policy`, and the command it names, with the
// placeholders filled in, serves tools/list over stdio.
func TestClientConfigs(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "clients")
	cases := []struct {
		name, file, key, wantType string
	}{
		{"claude-desktop", "claude-desktop/claude_desktop_config.json", "mcpServers", ""},
		{"vscode", "vscode/mcp.json", "servers", "stdio"},
		{"cursor", "cursor/mcp.json", "mcpServers", ""},
		{"inspector", "inspector/mcp.json", "mcpServers", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(data, &top); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			if len(top) != 1 || top[tc.key] == nil {
				t.Fatalf("%s: want exactly one top-level key %q, got %v", tc.file, tc.key, slices.Sorted(maps.Keys(top)))
			}
			dec := json.NewDecoder(bytes.NewReader(top[tc.key]))
			dec.DisallowUnknownFields()
			var servers map[string]clientServer
			if err := dec.Decode(&servers); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			s, ok := servers["mcp-secure"]
			if !ok || len(servers) != 1 {
				t.Fatalf("%s: want one server named mcp-secure, got %v", tc.file, servers)
			}
			if s.Type != tc.wantType {
				t.Errorf("type = %q, want %q", s.Type, tc.wantType)
			}
			checkServes(t, s.Command, s.Args, s.Env)
		})
	}

	t.Run("claude-code", func(t *testing.T) {
		argv := claudeMCPAdd(t, filepath.Join(dir, "README.md"))
		sep := slices.Index(argv, "--")
		if sep < 4 || argv[sep-1] != "mcp-secure" {
			t.Fatalf("want `claude mcp add [options] mcp-secure -- command args...`, got %q", argv)
		}
		checkServes(t, argv[sep+1], argv[sep+2:], nil)
	})
}

// claudeMCPAdd returns the words of the one `claude mcp add` line in a
// README's fenced code blocks.
func claudeMCPAdd(t *testing.T, readme string) []string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []string
	inCode := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if inCode && strings.HasPrefix(line, "claude mcp add ") {
			if found != nil {
				t.Fatalf("%s: more than one `claude mcp add` line", readme)
			}
			found = strings.Fields(line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if found == nil {
		t.Fatalf("%s: no `claude mcp add` line in a code block", readme)
	}
	return found
}

// checkServes checks that command and args are the placeholder binary with
// `serve --policy <placeholder>`, then runs them with the built binary and
// a test policy, and lists the tools.
func checkServes(t *testing.T, command string, args []string, env map[string]string) {
	t.Helper()
	if command != placeholderBin {
		t.Fatalf("command = %q, want %q", command, placeholderBin)
	}
	want := []string{"serve", "--policy", placeholderPolicy}
	if !slices.Equal(args, want) {
		t.Fatalf("args = %q, want %q", args, want)
	}
	e := newEnv(t, "")
	args = slices.Clone(args)
	args[2] = e.policy
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = &testWriter{t: t}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "clients-config-test", Version: "1.0.0"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if !slices.ContainsFunc(res.Tools, func(tool *mcp.Tool) bool { return tool.Name == "search_tools" }) {
		t.Errorf("tools/list has no search_tools: %d tools", len(res.Tools))
	}
}
