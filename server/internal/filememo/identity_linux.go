package filememo

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

func identify(path string) (identity, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return identity{}, false
	}
	return identity{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: int64(st.Size),
		mtime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)), ctime: time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)),
	}, true
}

func identityOf(st *syscall.Stat_t) identity {
	return identity{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: int64(st.Size),
		mtime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)), ctime: time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)),
	}
}

// openRegular opens path for reading (non-blocking: a FIFO swapped in
// must not hang the open) when it is a regular file, with the identity of
// what it opened; ok is false otherwise, or when /proc cannot name it.
func openRegular(path string) (f *os.File, id identity, ok bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, identity{}, false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		f.Close()
		return nil, identity{}, false
	}
	if _, err := os.Stat(fdPath(f)); err != nil {
		f.Close()
		return nil, identity{}, false
	}
	return f, identityOf(&st), true
}

// identifyOpen is the identity of the open file f.
func identifyOpen(f *os.File) (identity, bool) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return identity{}, false
	}
	return identityOf(&st), true
}

// fdPath names the open file f: opening it opens that file, wherever
// its name now points.
func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }
