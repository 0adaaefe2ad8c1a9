//go:build unix

package audit

import (
	"errors"
	"os"
	"syscall"
)

// openNoFollow opens name without following a final symbolic link and
// without blocking on a FIFO, then turns blocking back on. flag takes
// os.O_RDONLY or os.O_RDWR|os.O_APPEND, and os.O_CREATE, os.O_EXCL.
func openNoFollow(name string, flag int) (*os.File, error) {
	fd, err := syscall.Open(name, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0o600)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ELOOP):
			return nil, errSymlink
		case errors.Is(err, syscall.EISDIR):
			return nil, errDirectory
		case errors.Is(err, syscall.ENXIO):
			return nil, errSpecial
		}
		return nil, err
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// lockFile takes an exclusive advisory lock on f, waiting for it.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }

// unlockFile releases the lock of lockFile.
func unlockFile(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// ownership says whether file ownership and permission bits are checked.
const ownership = true

func fileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return ""
	case syscall.S_IFIFO:
		return "a FIFO"
	case syscall.S_IFCHR:
		return "a character device"
	case syscall.S_IFBLK:
		return "a block device"
	case syscall.S_IFDIR:
		return "a directory"
	case syscall.S_IFSOCK:
		return "a socket"
	}
	return "not a regular file"
}
