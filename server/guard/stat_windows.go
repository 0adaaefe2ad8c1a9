package guard

import (
	"errors"
	"runtime"
)

// errNoCommands is the command door's answer on Windows: it has no
// sandbox, process groups or file ownership to check there, so every
// command is refused.
var errNoCommands = errors.New("the command door is not available on " + runtime.GOOS + ": every command is refused")

type pathStat struct {
	dev, ino uint64
	mode     uint32
	uid      uint32
}

func (pathStat) regular() bool { return false }
func (pathStat) symlink() bool { return false }

func statNoFollow(string) (pathStat, error) { return pathStat{}, errNoCommands }

func statFollow(string) (pathStat, error) { return pathStat{}, errNoCommands }
