package upstream

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-secure/mcp-secure/server/plugin"
)

// BenchmarkForward is what the plugin adds to a call (the session
// lookup, the definition check, the result conversion): "direct" calls
// an in-process upstream over pipes with a client of its own, "handler"
// goes through the plugin's handler and Definition to the same kind of
// upstream. The server's pipeline (decision, audit) is measured by
// server.BenchmarkToolsCall.
func BenchmarkForward(b *testing.B) {
	args := json.RawMessage(`{"text":"hello"}`)
	b.Run("direct", func(b *testing.B) {
		l := &fakeLauncher{build: func(int) *mcp.Server { return echoServer("Echoes.") }}
		proc, err := l.Launch(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		defer func() { proc.Kill(); proc.Wait() }()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(b.Context(), &mcp.IOTransport{Reader: proc.Stdout(), Writer: proc.Stdin()}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		for b.Loop() {
			if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handler", func(b *testing.B) {
		l := &fakeLauncher{build: func(int) *mcp.Server { return echoServer("Echoes.") }}
		u, err := New(b.Context(), Config{Name: "fake", Prefix: "fake__", Launcher: l, Pins: &memPins{pinned: map[string]string{}}})
		if err != nil {
			b.Fatal(err)
		}
		defer u.Close()
		var echo plugin.Tool
		for _, t := range u.Tools() {
			if t.Name == "fake__echo" {
				echo = t
			}
		}
		call := &plugin.Call{Tool: "fake__echo", Arguments: args}
		for b.Loop() {
			if echo.Definition().Changed {
				b.Fatal("changed")
			}
			if res, err := echo.Handler(context.Background(), call); err != nil || res.IsError {
				b.Fatal(err, res)
			}
		}
	})
}

// BenchmarkForwardRaw isolates the forward path from the upstream's own
// cost: the upstream is a hand-written server over real pipes that
// answers at once. "sdk-client" calls it with the Go SDK's client
// session, "handler" through the plugin's handler (its own connection
// for tools/call).
func BenchmarkForwardRaw(b *testing.B) {
	args := json.RawMessage(`{"text":"hello"}`)
	b.Run("sdk-client", func(b *testing.B) {
		l := &rawLauncher{script: echoScript}
		proc, err := l.Launch(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		defer func() { proc.Kill(); proc.Wait() }()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(b.Context(), &mcp.IOTransport{Reader: proc.Stdout(), Writer: proc.Stdin()}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handler", func(b *testing.B) {
		u, err := New(b.Context(), Config{Name: "raw", Prefix: "raw__", Launcher: &rawLauncher{script: echoScript}, Pins: &memPins{pinned: map[string]string{}}})
		if err != nil {
			b.Fatal(err)
		}
		defer u.Close()
		var echo plugin.Tool
		for _, t := range u.Tools() {
			if t.Name == "raw__echo" {
				echo = t
			}
		}
		call := &plugin.Call{Tool: "raw__echo", Arguments: args}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if echo.Definition().Changed {
				b.Fatal("changed")
			}
			if res, err := echo.Handler(ctx, call); err != nil || res.IsError || res.Text != "hello" {
				b.Fatal(err, res)
			}
		}
	})
}
