package server

import (
	"io"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// outputRoom is how many bytes out takes now without blocking: any
// number for a regular file, the size of a pipe's buffer when the pipe
// is empty and none when it is not; ok is false for anything else.
func outputRoom(out io.Writer) (room int, ok bool) {
	f, isFile := out.(*os.File)
	if !isFile {
		return 0, false
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, false
	}
	switch {
	case fi.Mode().IsRegular():
		return math.MaxInt, true
	case fi.Mode()&os.ModeNamedPipe == 0:
		return 0, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	var size, queued int
	var cerr error
	err = rc.Control(func(fd uintptr) {
		if size, cerr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); cerr != nil {
			return
		}
		queued, cerr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
	})
	if err != nil || cerr != nil {
		return 0, false
	}
	// A pipe's buffer fills by pages, and a write does not always share
	// a page with the one before: the bytes left are not room. Only an
	// empty pipe's room is known, its size.
	if queued > 0 {
		return 0, true
	}
	return size, true
}
