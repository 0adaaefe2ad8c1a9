//go:build windows

package audit

import (
	"os"

	"golang.org/x/sys/windows"
)

// On Windows the audit file is opened after checking, by name, that it is
// not a reparse point (a symbolic link or junction): the check and the
// open are two steps, unlike O_NOFOLLOW on Unix. Ownership and permission
// bits are not checked (Windows uses ACLs; the log's directory is created
// in the user's profile). Locking uses LockFileEx, so several servers can
// share one log as on Unix.

func openNoFollow(name string, flag int) (*os.File, error) {
	if fi, err := os.Lstat(name); err == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0 || fi.Mode()&os.ModeIrregular != 0:
			return nil, errSymlink
		case fi.IsDir():
			return nil, errDirectory
		case !fi.Mode().IsRegular():
			return nil, errSpecial
		}
	}
	return os.OpenFile(name, flag, 0o600)
}

func statFile(f *os.File) (fileStat, error) {
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &info); err != nil {
		return fileStat{}, err
	}
	st := fileStat{
		dev:   uint64(info.VolumeSerialNumber),
		ino:   uint64(info.FileIndexHigh)<<32 | uint64(info.FileIndexLow),
		size:  int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow),
		owner: -1,
		links: uint64(info.NumberOfLinks),
		perm:  0o600,
	}
	if info.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0 {
		st.kind = "a directory"
	}
	return st, nil
}

func statPath(path string) (fileStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileStat{}, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return fileStat{kind: "a symbolic link", owner: -1}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fileStat{}, err
	}
	defer f.Close()
	return statFile(f)
}

func lockFile(f *os.File) error {
	ol := new(windows.Overlapped)
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK, 0, ^uint32(0), ^uint32(0), ol)
}

func unlockFile(f *os.File) {
	ol := new(windows.Overlapped)
	_ = windows.UnlockFileEx(windows.Handle(f.Fd()), 0, ^uint32(0), ^uint32(0), ol)
}

const ownership = false
