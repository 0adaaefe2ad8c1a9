// Package filememo remembers what was read from a file (the dynamic
// loader an executable names, its #! line) for as long as the file is
// the same: the same inode on the same device, with the same size,
// modification and change times. A file written, truncated, replaced or
// renamed over since is read again; its change time moves with every
// write and cannot be set back. One stat replaces the open, read and
// parse of every call.
package filememo

import (
	"sync"
	"time"
)

// Max bounds the files a Memo remembers; past it, it forgets them all.
const Max = 256

// racyWindow: a file changed less than this long ago is not remembered.
// File times are coarse (a clock tick, seconds on some file systems): a
// file written again within the same tick as the read could keep every
// time it had, and would then be taken for the file read, for good. Once
// its change time lies this far back, any later write moves it. (Git
// treats its index entries the same way.)
var racyWindow = 2 * time.Second

// Memo remembers a value per file; the zero Memo is empty and ready.
type Memo[V any] struct {
	mu sync.Mutex
	m  map[string]entry[V]
}

type entry[V any] struct {
	id identity
	v  V
}

// identity is what says a file is still the one that was read.
type identity struct {
	dev, ino     uint64
	size         int64
	mtime, ctime time.Time
}

// Get returns what read returns for path, read again unless path is
// still the file it was read from. What read returns with ok false is
// not remembered (an error, say).
//
// read is given the path to read. Where a value may be remembered, that
// is a path naming the file as opened once (/proc/self/fd/N), and the
// value is remembered under the identity of that open file, and only if
// path still names it afterwards: a path switched to another file while
// it was read (a symlink or directory renamed over and back, which moves
// neither file's times) cannot leave one file's value under the other's
// identity.
func (c *Memo[V]) Get(path string, read func(path string) (v V, ok bool)) V {
	v, _, _ := c.GetIdentified(path, read)
	return v
}

// Identity says which file a value was read from: its device and inode,
// size, and modification and change times (nanoseconds since the epoch).
type Identity struct {
	Dev, Ino         uint64
	Size             int64
	MtimeNs, CtimeNs int64
}

// GetIdentified is Get, and the identity of the file the value was read
// from: ok is false when it is not known (off Linux, not a regular file,
// or a file that changed while it was read).
func (c *Memo[V]) GetIdentified(path string, read func(path string) (v V, ok bool)) (V, Identity, bool) {
	before, known := identify(path)
	if !known {
		v, _ := read(path)
		return v, Identity{}, false
	}
	c.mu.Lock()
	e, hit := c.m[path]
	c.mu.Unlock()
	if hit && e.id == before {
		return e.v, before.export(), true
	}
	f, opened, ok := openRegular(path)
	if !ok {
		v, _ := read(path)
		return v, Identity{}, false
	}
	defer f.Close()
	v, ok := read(fdPath(f))
	if !ok {
		return v, Identity{}, false
	}
	// Remembered only when the open file did not change while it was
	// read, nor shortly before, and path names it still.
	if again, ok := identifyOpen(f); !ok || again != opened {
		return v, Identity{}, false
	}
	if time.Since(opened.ctime) < racyWindow {
		return v, opened.export(), true
	}
	if after, _ := identify(path); after != opened {
		return v, opened.export(), true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= Max {
		c.m = map[string]entry[V]{}
	}
	c.m[path] = entry[V]{id: opened, v: v}
	return v, opened.export(), true
}

func (id identity) export() Identity {
	return Identity{Dev: id.dev, Ino: id.ino, Size: id.size, MtimeNs: id.mtime.UnixNano(), CtimeNs: id.ctime.UnixNano()}
}

// SetRacyWindowForTest sets how recently changed a file may be and still
// be remembered, until the returned function puts it back: tests write
// files and read them at once.
func SetRacyWindowForTest(d time.Duration) (restore func()) {
	old := racyWindow
	racyWindow = d
	return func() { racyWindow = old }
}
