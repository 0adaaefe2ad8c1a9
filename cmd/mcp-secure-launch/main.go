// Command mcp-secure-launch is the sandbox launcher of mcp-secure as a
// binary of its own. mcp-secure starts every sandboxed child (a command a
// tool runs, an external plugin, an upstream MCP server) through a
// launcher that confines itself and then executes the child; when this
// binary sits beside the mcp-secure executable and speaks the same
// protocol, the server starts it instead of re-executing its own, much
// larger, binary, which takes many times longer to start.
//
// It is not meant to be run by hand: started any other way it exits
// with status 2.
package main

import (
	"fmt"
	"os"

	"github.com/mcp-secure/mcp-secure/server/sandbox"
)

func main() {
	sandbox.RunIfLauncher()
	fmt.Fprintf(os.Stderr, "%s is started by mcp-secure to confine the processes it runs; it is not run by hand\n", sandbox.LauncherName)
	os.Exit(2)
}
