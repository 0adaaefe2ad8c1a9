package audit

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The sink asks statx for what it checks and nothing more: not the
// file's times. Since Linux 6.13 a query of a file's times makes the
// next write to it take a fine-grained timestamp and dirty the inode
// (multigrain timestamps), so a check that reads them before every
// batch would make every batch's write update the inode; without them,
// writes update it once per clock tick, as when nobody looks.
const statMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK | unix.STATX_UID | unix.STATX_INO | unix.STATX_SIZE

func statxOf(st *unix.Statx_t) fileStat {
	return fileStat{
		dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino, size: int64(st.Size),
		kind: fileType(uint32(st.Mode)), owner: int(st.Uid), links: uint64(st.Nlink),
		perm: os.FileMode(st.Mode & 0o777),
	}
}

// statx describes name under dirfd with flags, or reports false when the
// kernel has no statx (before Linux 4.11) or a seccomp filter refuses it
// (as older container runtimes' did): the caller then asks stat.
func statx(dirfd int, name string, flags int) (fileStat, bool, error) {
	var st unix.Statx_t
	err := unix.Statx(dirfd, name, flags|unix.AT_STATX_SYNC_AS_STAT, statMask, &st)
	switch {
	case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
		return fileStat{}, false, nil
	case err != nil:
		return fileStat{}, true, err
	case st.Mask&statMask != statMask:
		return fileStat{}, true, errors.New("statx did not report all that was asked")
	}
	return statxOf(&st), true, nil
}

// statFile describes an open file.
func statFile(f *os.File) (fileStat, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return fileStat{}, err
	}
	var fs fileStat
	var ok bool
	var serr error
	if err := rc.Control(func(fd uintptr) { fs, ok, serr = statx(int(fd), "", unix.AT_EMPTY_PATH) }); err != nil {
		return fileStat{}, err
	}
	if ok || serr != nil {
		return fs, serr
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fileStat{}, err
	}
	return statOf(&st), nil
}

// statPath describes the file path names, without following a final
// symbolic link.
func statPath(path string) (fileStat, error) {
	fs, ok, err := statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW)
	if ok || err != nil {
		return fs, err
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fileStat{}, err
	}
	return statOf(&st), nil
}

func statOf(st *syscall.Stat_t) fileStat {
	return fileStat{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		kind: fileType(uint32(st.Mode)), owner: int(st.Uid), links: uint64(st.Nlink),
		perm: os.FileMode(st.Mode & 0o777),
	}
}
