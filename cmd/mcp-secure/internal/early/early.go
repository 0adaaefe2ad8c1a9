// Package early starts, while the packages imported after it still
// initialise, what needs nothing from the rest of the program. Its
// import path sorts before those of the packages it does not depend on,
// so it initialises as soon as the engine has:
//   - the garbage collector's target is raised for the start (see
//     startGCPercent), before the allocations it is raised for;
//   - for serve, the parse and compile of the built-in policy modules
//     begins on another goroutine (engine.Prebuild), which serve's first
//     answer waits for.
package early

import (
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/mcp-secure/mcp-secure/server/engine"
)

func init() {
	if testing.Testing() {
		return // a test binary's start is not the server's
	}
	raiseGCForStart()
	if cmd, _ := Command(os.Args[1:]); cmd == "serve" {
		engine.Prebuild()
	}
}

// Command is the subcommand args run and the arguments it takes: the
// first argument unless it is a flag; -v and -h stand for version and
// help; with no command, serve.
func Command(args []string) (cmd string, rest []string) {
	if len(args) == 0 {
		return "serve", args
	}
	switch args[0] {
	case "-v", "--version", "-version":
		return "version", args[1:]
	case "-h", "--help", "-help":
		return "help", args[1:]
	}
	if strings.HasPrefix(args[0], "-") {
		return "serve", args
	}
	return args[0], args[1:]
}

// startGCPercent is the garbage collector's target while the server
// starts. Start-up allocates a few megabytes that mostly stay live (the
// compiled policy, the tool table), and with the default target the
// collector runs several times over them for nothing: measured, a start
// costs some 20% less CPU at 400, and the peak RSS, mostly the binary's
// own pages, does not change.
const startGCPercent = 400

// startGC holds the target to go back to once started.
var startGC struct {
	once   sync.Once
	raised bool
	prev   int
}

// raiseGCForStart raises the collector's target for the start, unless
// GOGC chooses it. EndStartGC puts it back.
func raiseGCForStart() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	startGC.prev = debug.SetGCPercent(startGCPercent)
	startGC.raised = true
}

// EndStartGC puts back the collector's target raised for the start:
// serve calls it once it has started, every other command at once.
func EndStartGC() {
	startGC.once.Do(func() {
		if startGC.raised {
			debug.SetGCPercent(startGC.prev)
		}
	})
}
