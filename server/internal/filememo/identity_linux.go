package filememo

import (
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
