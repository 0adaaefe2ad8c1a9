package server

import (
	"io"
	"math"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// outputKinds remembers, per output, what outputRoom found it to be (the
// kind of an open file does not change) and a pipe's buffer size.
var outputKinds sync.Map // *os.File → outputKind

type outputKind struct {
	regular, pipe bool
	size          int
}

// outputRoom is how many bytes out takes now without blocking: any
// number for a regular file, the size of a pipe's buffer when the pipe
// is empty and none when it is not; ok is false for anything else.
func outputRoom(out io.Writer) (room int, ok bool) {
	f, isFile := out.(*os.File)
	if !isFile {
		return 0, false
	}
	k, err := kindOf(f)
	switch {
	case err != nil:
		return 0, false
	case k.regular:
		return math.MaxInt, true
	case !k.pipe:
		return 0, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	var queued int
	var cerr error
	if err := rc.Control(func(fd uintptr) { queued, cerr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil || cerr != nil { // FIONREAD
		return 0, false
	}
	// A pipe's buffer fills by pages, and a write does not always share
	// a page with the one before: the bytes left are not room. Only an
	// empty pipe's room is known, its size.
	if queued > 0 {
		return 0, true
	}
	return k.size, true
}

// kindOf is what f is, found once per file.
func kindOf(f *os.File) (outputKind, error) {
	if k, ok := outputKinds.Load(f); ok {
		return k.(outputKind), nil
	}
	fi, err := f.Stat()
	if err != nil {
		return outputKind{}, err
	}
	k := outputKind{regular: fi.Mode().IsRegular(), pipe: fi.Mode()&os.ModeNamedPipe != 0}
	if k.pipe {
		rc, err := f.SyscallConn()
		if err != nil {
			return outputKind{}, err
		}
		var cerr error
		if err := rc.Control(func(fd uintptr) { k.size, cerr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); err != nil {
			return outputKind{}, err
		}
		if cerr != nil {
			return outputKind{}, cerr
		}
	}
	outputKinds.Store(f, k)
	return k, nil
}
