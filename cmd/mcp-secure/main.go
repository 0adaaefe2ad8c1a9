// Command mcp-secure is a security-first MCP server: every tool call,
// network dial and path access is an Open Policy Agent decision.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/mcp-secure/mcp-secure/server/prefault"
	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Re-executed as the launcher of a sandboxed child, the binary is
	// that and nothing else (the hook also runs from the sandbox
	// package's init, before the heavier packages initialise).
	sandbox.RunIfLauncher()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfiles := startProfiles(os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfiles()
	stop()
	os.Exit(code)
}
