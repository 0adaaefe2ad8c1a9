package guard

import (
	"bytes"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdPath is the real path of an open file, as the kernel names it
// (fcntl F_GETPATH).
func fdPath(f *os.File) (string, error) {
	buf := make([]byte, unix.PathMax)
	if _, err := unix.FcntlInt(f.Fd(), unix.F_GETPATH, int(uintptr(unsafe.Pointer(&buf[0])))); err != nil {
		return "", err
	}
	n := bytes.IndexByte(buf, 0)
	if n < 0 {
		n = len(buf)
	}
	return string(buf[:n]), nil
}

// PathResolution says how the filesystem door learns the real path of
// what it opened, for the start-up log.
const PathResolution = "real paths read from the open descriptor (F_GETPATH)"

// FilesAvailable says whether the filesystem door serves paths here.
const FilesAvailable = true
