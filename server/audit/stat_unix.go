//go:build unix && !linux

package audit

import (
	"os"
	"syscall"
)

func statOf(st *syscall.Stat_t) fileStat {
	return fileStat{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		kind: fileType(uint32(st.Mode)), owner: int(st.Uid), links: uint64(st.Nlink),
		perm: os.FileMode(st.Mode & 0o777),
	}
}

// statFile describes an open file.
func statFile(f *os.File) (fileStat, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fileStat{}, err
	}
	return statOf(&st), nil
}

// statPath describes the file path names, without following a final
// symbolic link.
func statPath(path string) (fileStat, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fileStat{}, err
	}
	return statOf(&st), nil
}
