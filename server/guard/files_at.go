//go:build unix

package guard

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mcp-secure/mcp-secure/server/audit"
)

// Opening for a look never blocks on a FIFO or takes a terminal.
const (
	openNonblock  = syscall.O_NONBLOCK | syscall.O_NOCTTY
	openDirectory = syscall.O_DIRECTORY | syscall.O_NONBLOCK
)

// writeIn writes data to name in dir: a new file is created exclusively,
// an existing regular file is replaced through a temporary file renamed
// over it. path is the decided path, for errors.
func writeIn(dir *os.File, name string, data []byte, path string) error {
	dfd := int(dir.Fd())
	var st unix.Stat_t
	switch err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("write %s: exists and is not a regular file", path)
	case errors.Is(err, unix.ENOENT):
		return writeAt(dfd, name, data, path)
	case err != nil:
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := fmt.Sprintf(".%s.tmp-%s", name, audit.NewID()[:8])
	if err := writeAt(dfd, tmp, data, path); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return err
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeAt creates name in the directory dfd exclusively, without following
// a symlink, and writes data to it.
func writeAt(dfd int, name string, data []byte, path string) error {
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeClose(os.NewFile(uintptr(fd), path), data, path)
}

// mkdirIn makes the directory part in dir (0700, an existing one is
// kept) and opens it without following a symlink.
func mkdirIn(dir *os.File, part string) (*os.File, error) {
	dfd := int(dir.Fd())
	if err := unix.Mkdirat(dfd, part, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	fd, err := unix.Openat(dfd, part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), part), nil
}

// removeIn removes name (a file, a symlink itself or an empty directory)
// from dir.
func removeIn(dir *os.File, name string) error {
	err := unix.Unlinkat(int(dir.Fd()), name, 0)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) && isDirAt(dir, name) {
		err = unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR)
	}
	return err
}

// isDirAt reports whether name in dir is a directory (not following a
// symlink); unlink of a directory fails with EPERM on some systems.
func isDirAt(dir *os.File, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}
