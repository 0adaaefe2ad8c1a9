package guard

import "os"

// Windows has no *at system calls; the filesystem door refuses every
// access there (see fdPath), and these are never reached.
const (
	openNonblock  = 0
	openDirectory = 0
)

func writeIn(*os.File, string, []byte, string) error { return errNoRealPath }

func mkdirIn(*os.File, string) (*os.File, error) { return nil, errNoRealPath }

func removeIn(*os.File, string) error { return errNoRealPath }
