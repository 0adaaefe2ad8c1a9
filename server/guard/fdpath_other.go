//go:build !linux && !darwin

package guard

import (
	"errors"
	"os"
	"runtime"
)

// errNoRealPath is every path access's error where the real path of an
// open file cannot be learnt: the door fails closed.
var errNoRealPath = errors.New("the filesystem door is not available on " + runtime.GOOS + ": it cannot learn the real path of an open file, so every path access is refused")

func fdPath(*os.File) (string, error) { return "", errNoRealPath }

// PathResolution says how the filesystem door learns the real path of
// what it opened, for the start-up log.
const PathResolution = "unavailable on " + runtime.GOOS + ": every path access is refused"

// FilesAvailable says whether the filesystem door serves paths here.
const FilesAvailable = false
