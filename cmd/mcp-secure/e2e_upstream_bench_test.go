package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkUpstreamEcho measures one tools/call of the TypeScript SDK
// server's echo: called directly over its stdio ("direct"), and through
// mcp-secure ("through": validation, rate limit, decision, two audit
// records, then the upstream). The difference of the two is what
// mcp-secure adds to an upstream call:
//
//	go test ./cmd/mcp-secure -run '^$' -bench BenchmarkUpstreamEcho -benchtime 2000x -count 5
func BenchmarkUpstreamEcho(b *testing.B) {
	args := map[string]any{"text": "hello"}
	run := func(b *testing.B, cs *mcp.ClientSession, name string) {
		ctx := context.Background()
		for range 20 { // warm up
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for b.Loop() {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
			if err != nil || res.IsError {
				b.Fatalf("call: %v %v", err, res)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		u := newUpstreamEnv(b, defaultNetwork, "", "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.Command("node", filepath.Join(u.code, "server.mjs"))
		// The same environment as through mcp-secure: each call is noted
		// in CALL_LOG there, so it is here too.
		cmd.Env = append(os.Environ(), "CALL_LOG="+u.calls)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		run(b, cs, "echo")
	})
	// A built-in tool through the same server, for scale: the pipeline
	// without the upstream hop.
	b.Run("builtin", func(b *testing.B) {
		u := newUpstreamEnv(b, defaultNetwork, "", "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: u.command()}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		args = map[string]any{}
		run(b, cs, "list_categories")
		args = map[string]any{"text": "hello"}
	})
	b.Run("through", func(b *testing.B) {
		u := newUpstreamEnv(b, defaultNetwork, "", "")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := u.command()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		run(b, cs, "demo__echo")
	})
}
