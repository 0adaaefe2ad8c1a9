package pins

import (
	"testing"
	"time"
)

// SetRecheck sets how long a look at the file holds for Pinned, for the
// rest of the test.
func SetRecheck(t *testing.T, d time.Duration) {
	old := recheck
	recheck = d
	t.Cleanup(func() { recheck = old })
}

// FailReplace makes every write of the file fail, for the rest of the
// test.
func FailReplace(t *testing.T, err error) {
	old := replaceFile
	replaceFile = func(string, string) error { return err }
	t.Cleanup(func() { replaceFile = old })
}

// SizeOf is d.size().
func SizeOf(d *Definition) int { return d.size() }
