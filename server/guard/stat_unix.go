//go:build unix

package guard

import "syscall"

// pathStat is what the command door checks of a file on the way to it.
type pathStat struct {
	dev, ino uint64
	mode     uint32 // type and permission bits, as st_mode
	uid      uint32
}

func (s pathStat) regular() bool { return s.mode&syscall.S_IFMT == syscall.S_IFREG }
func (s pathStat) symlink() bool { return s.mode&syscall.S_IFMT == syscall.S_IFLNK }

func fromStat(st *syscall.Stat_t) pathStat {
	return pathStat{dev: uint64(st.Dev), ino: uint64(st.Ino), mode: uint32(st.Mode), uid: st.Uid}
}

// statNoFollow describes path itself, a symlink included.
func statNoFollow(path string) (pathStat, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return pathStat{}, err
	}
	return fromStat(&st), nil
}

// statFollow describes what path leads to.
func statFollow(path string) (pathStat, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return pathStat{}, err
	}
	return fromStat(&st), nil
}
