package guard

import (
	"os"
	"strconv"
)

// fdPath is the real path of an open file, as the kernel names it.
func fdPath(f *os.File) (string, error) {
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}

// PathResolution says how the filesystem door learns the real path of
// what it opened, for the start-up log.
const PathResolution = "real paths read from the open descriptor (/proc/self/fd)"

// FilesAvailable says whether the filesystem door serves paths here.
const FilesAvailable = true
