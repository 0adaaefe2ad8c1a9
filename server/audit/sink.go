package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Sink stores encoded records. Write takes one record (a JSON object
// without a trailing newline) and must be safe for concurrent use; a
// record is durable as far as the sink promises when Write returns.
type Sink interface {
	Write(ctx context.Context, record []byte) error
	Close() error
}

// localSink marks the package's own sinks, which write to a local file or
// writer and never wait on their context.
type localSink interface{ local() }

func (*FileSink) local()   {}
func (*WriterSink) local() {}

// FileOptions configure a FileSink.
type FileOptions struct {
	// Sync fsyncs the file after every record.
	Sync bool
	// MaxSize rotates the file before a record would take it past this
	// many bytes; 0 never rotates.
	MaxSize int64
	// Retention is how many rotated files are kept (path.1 is the newest);
	// older ones are removed. 0 keeps none.
	Retention int
}

// FileSink appends JSON Lines to a file it opened without following a
// symbolic link, and checks before every write that the path still names
// that file.
type FileSink struct {
	path string
	opts FileOptions

	mu     sync.Mutex
	f      *os.File
	dev    uint64
	ino    uint64
	size   int64
	closed bool
	// last is the file's last complete line when it was opened; torn
	// says the file ended in an incomplete line.
	last []byte
	torn bool
	// checked: while this process holds the file lock, the path was seen
	// to name this file, no shorter than what was written; the write
	// under the same lock need not look again.
	checked bool
	// The file lock, held between batches for a while (linger.go): held
	// since heldSince, inBatch while a batch is being written, release
	// the timer that drops it.
	held      bool
	heldSince time.Time
	inBatch   bool
	release   *time.Timer
}

var _ Sink = (*FileSink)(nil)

// OpenFile is Open with default options.
func OpenFile(path string) (*FileSink, error) { return Open(path, nil) }

// Open opens (creating if needed) the audit file at path for appending.
//
// A created directory gets mode 0700. The final path component must not
// be a symbolic link and must be a regular file owned by this user with a
// single link: a FIFO, a device or a directory is refused at once (the
// open does not block), and an existing file is tightened to 0600.
// Directory components may be symbolic links (the operator chose the
// path); the file itself may not, since whoever can write the directory
// could point it at another file.
func Open(path string, opts *FileOptions) (*FileSink, error) {
	if path == "" {
		return nil, errors.New("open audit log: empty path")
	}
	s := &FileSink{path: path}
	if opts != nil {
		s.opts = *opts
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	if err := s.readTail(); err != nil {
		s.f.Close()
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	return s, nil
}

// open opens s.path safely and records its identity and size.
func (s *FileSink) open() error { return s.openFlags(s.path, os.O_CREATE) }

// openFlags opens name as the log with extra flags (os.O_CREATE,
// os.O_EXCL): 0 opens only an existing file.
func (s *FileSink) openFlags(name string, extra int) error {
	f, err := openNoFollow(name, os.O_RDWR|os.O_APPEND|extra)
	if err != nil {
		switch {
		case errors.Is(err, errSymlink):
			return fmt.Errorf("open audit log %s: it is a symbolic link; name the real file", s.path)
		case errors.Is(err, errDirectory):
			return fmt.Errorf("open audit log %s: it is a directory", s.path)
		case errors.Is(err, errSpecial):
			return fmt.Errorf("open audit log %s: it is not a regular file (a FIFO or socket)", s.path)
		}
		return fmt.Errorf("open audit log %s: %w", s.path, err)
	}
	st, err := statFile(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("open audit log %s: %w", s.path, err)
	}
	refuse := func(why string) error {
		f.Close()
		return fmt.Errorf("open audit log %s: %s", s.path, why)
	}
	switch {
	case st.kind != "":
		return refuse("it is not a regular file (" + st.kind + ")")
	case ownership && st.owner != os.Geteuid():
		return refuse("it is owned by uid " + strconv.Itoa(st.owner) + ", not by this user")
	case st.links > 1:
		return refuse("it has " + strconv.FormatUint(st.links, 10) + " hard links; an audit log has one")
	}
	if ownership && st.perm != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			return refuse(err.Error())
		}
	}
	s.f = f
	s.dev, s.ino, s.size = st.dev, st.ino, st.size
	s.checked = false
	return nil
}

// fileStat is what the sink checks of a file.
type fileStat struct {
	dev, ino uint64
	size     int64
	kind     string // "" for a regular file, else what it is ("a FIFO")
	owner    int    // the owner's uid; -1 where the platform has none
	links    uint64
	perm     os.FileMode
}

// The kinds of path openNoFollow refuses.
var (
	errSymlink   = errors.New("symbolic link")
	errDirectory = errors.New("directory")
	errSpecial   = errors.New("not a regular file")
)

var _ sharedSink = (*FileSink)(nil)

// lock takes an exclusive advisory lock on the file for one record (other
// servers appending to the same log take it too) and, when the file grew
// since this process last wrote, reads the line another writer ended it
// with.
func (s *FileSink) lock() (last []byte, changed, torn bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	followed := false
	// Each turn waits on the lock, so this is no spin; a log rotated more
	// often than that under a waiting server is refused.
	for range 64 {
		if s.closed {
			return nil, false, false, ErrClosed
		}
		if err := s.takeLock(); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, false, false, err
			}
			return nil, false, false, fmt.Errorf("lock %s: %w", s.path, err)
		}
		away, here, cur := s.whereAway()
		if away {
			// Another server rotated the log while this one waited: write
			// on in the new file, continuing from its last record.
			s.dropLock()
			prev := s.f
			// The rotating server creates the new file; until it has, wait
			// (creating it here would start a chain beside its own).
			if err := s.openFlags(s.path, 0); err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					return nil, false, false, err
				}
				time.Sleep(time.Millisecond)
				continue
			}
			prev.Close()
			followed = true
			continue
		}
		// When the path names this file, its stat is this file's: no
		// second look needed.
		st := cur
		if !here {
			if st, err = statFile(s.f); err != nil {
				s.dropLock()
				return nil, false, false, fmt.Errorf("%s: %w", s.path, err)
			}
		}
		if !followed && st.size <= s.size {
			s.checked = here && st.size == s.size
			return nil, false, false, nil // nobody else wrote (a shorter file fails the write's check)
		}
		s.size = st.size
		s.checked = here
		s.last, s.torn = nil, false
		if err := s.readTail(); err != nil {
			s.dropLock()
			return nil, false, false, fmt.Errorf("%s: %w", s.path, err)
		}
		return s.last, true, s.torn, nil
	}
	return nil, false, false, fmt.Errorf("%w: %s keeps being rotated under this server", ErrReplaced, s.path)
}

func (s *FileSink) unlock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checked = false
	if !s.closed {
		s.lingerLock()
	}
}

// tailFirst is how much of the file's end is read first to find its
// last line, and tailWindow the most (a longer last line is not a
// record of ours). Records are mostly far shorter than tailFirst, and a
// start, or a write after another server's, reads no more than it needs.
const (
	tailFirst  = 16 << 10
	tailWindow = 1 << 20
)

// readTail finds the last complete line. A file ending in a partial line
// gets a newline, so that the next record starts a line of its own.
func (s *FileSink) readTail() error {
	if s.size == 0 {
		return nil
	}
	for _, window := range []int64{tailFirst, tailWindow} {
		n := min(s.size, window)
		buf := make([]byte, n)
		if _, err := s.f.ReadAt(buf, s.size-n); err != nil && err != io.EOF {
			return err
		}
		if buf[len(buf)-1] != '\n' {
			s.torn = true
			if _, err := s.f.Write([]byte{'\n'}); err != nil {
				return err
			}
			s.size++
			return nil
		}
		buf = buf[:len(buf)-1]
		start := bytes.LastIndexByte(buf, '\n') + 1
		if start == 0 && n < s.size {
			if window < tailWindow {
				continue // the line starts further back
			}
			s.torn = true // a last line longer than the window: not ours
			return nil
		}
		s.last = buf[start:]
		return nil
	}
	return nil
}

// ErrReplaced means the audit path no longer names the file the server
// opened: it was removed, renamed or replaced.
var ErrReplaced = errors.New("the audit log path no longer names the open file as written (it was removed, renamed, replaced or cut short)")

// check fails unless s.path still names the open file. The server does
// not reopen: it cannot tell an operator's move from an attacker's swap,
// and writing on into a file someone else put there would mix their lines
// into the evidence. Calls fail closed until the operator restarts it.
func (s *FileSink) check() error {
	st, err := statPath(s.path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrReplaced, s.path, err)
	}
	if st.dev != s.dev || st.ino != s.ino {
		return fmt.Errorf("%w: %s", ErrReplaced, s.path)
	}
	// Others may append (another server on the same log), but nobody may
	// cut what is written: a shorter file was truncated or rewritten in
	// place.
	if st.size < s.size {
		return fmt.Errorf("%w: %s holds %d bytes, fewer than the %d written to it: it was truncated or rewritten", ErrReplaced, s.path, st.size, s.size)
	}
	return nil
}

// Write appends record and a newline in one write call, after checking
// that the path still names the open file.
func (s *FileSink) Write(ctx context.Context, record []byte) error {
	line := make([]byte, 0, len(record)+1)
	return s.writeLines(ctx, append(append(line, record...), '\n'))
}

// writeLines implements batchSink: it writes data, whole lines, in one
// write call, after checking that the path still names the open file.
func (s *FileSink) writeLines(_ context.Context, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.checked {
		if err := s.check(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(line)
	s.size += int64(n)
	if err != nil {
		return err
	}
	if s.opts.Sync {
		return s.f.Sync()
	}
	return nil
}

// tail implements tailSink.
func (s *FileSink) tail() (last []byte, empty, torn bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.size == 0, s.torn
}

// needsRotation implements rotatingSink.
func (s *FileSink) needsRotation(next int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.MaxSize > 0 && s.size > 0 && s.size+int64(next)+1 > s.opts.MaxSize
}

// rotate renames path.N-1 to path.N ... path to path.1, removes what is
// beyond the retention count and opens a new, empty path. It returns the
// name the old file now has ("" if it was removed).
func (s *FileSink) rotate() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	if err := s.check(); err != nil {
		return "", err
	}
	name := func(i int) string { return s.path + "." + strconv.Itoa(i) }
	// The old file stays open (and locked, when a record is being
	// written) until the new one is open and locked: another server on
	// the same log waits, then follows the rotation (see lock).
	prev := s.f
	s.closed = true // until the new file is open
	defer func() {
		if s.f != prev {
			prev.Close()
		}
	}()
	// The new file is made and locked under a temporary name first, so a
	// server following the rotation never finds the log unlocked.
	next := fmt.Sprintf("%s.next-%d", s.path, os.Getpid())
	if err := s.openFlags(next, os.O_CREATE|os.O_EXCL); err != nil {
		s.f = prev
		return "", err
	}
	if err := lockFile(s.f); err != nil {
		s.f.Close()
		os.Remove(next)
		s.f = prev
		return "", fmt.Errorf("lock %s: %w", next, err)
	}
	fresh := s.f
	s.f = prev
	// A rotation that fails half way leaves this sink closed: every later
	// record fails, and the call with it.
	fail := func(err error) (string, error) {
		fresh.Close()
		os.Remove(next)
		return "", err
	}
	old := ""
	if s.opts.Retention <= 0 {
		if err := os.Remove(s.path); err != nil {
			return fail(err)
		}
	} else {
		if err := os.Remove(name(s.opts.Retention)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
		for i := s.opts.Retention - 1; i >= 1; i-- {
			if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fail(err)
			}
		}
		if err := os.Rename(s.path, name(1)); err != nil {
			return fail(err)
		}
		old = name(1)
	}
	if err := os.Rename(next, s.path); err != nil {
		return fail(err)
	}
	s.f = fresh
	s.closed = false
	s.last, s.torn = nil, false
	return old, nil
}

// whereAway reports whether another writer rotated the log (away): the
// path names another file and the file this sink holds is now one of the
// rotated ones (path.1, path.2, ...: it may have been rotated more than
// once while this sink waited); and whether the path names this file
// (here), with the path's stat when it does.
func (s *FileSink) whereAway() (away, here bool, cur fileStat) {
	cur, err := statPath(s.path)
	switch {
	case err == nil && cur.dev == s.dev && cur.ino == s.ino:
		return false, true, cur // still the log
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, false, fileStat{}
	}
	// The path names another file, or none yet (mid-rotation).
	// Every name is looked at: a rotation in progress renames them one by
	// one, and leaves gaps for a moment.
	for i := 1; i <= s.opts.Retention; i++ {
		if st, err := statPath(s.path + "." + strconv.Itoa(i)); err == nil && st.dev == s.dev && st.ino == s.ino {
			return true, false, fileStat{}
		}
	}
	return false, false, fileStat{}
}

// Close closes the file (which drops its lock).
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release != nil {
		s.release.Stop()
	}
	if s.closed {
		return nil
	}
	s.closed, s.held = true, false
	return s.f.Close()
}

// WriterSink writes JSON Lines to an io.Writer, one write per record.
type WriterSink struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

var _ Sink = (*WriterSink)(nil)

// NewWriterSink returns a sink over w.
func NewWriterSink(w io.Writer) *WriterSink { return &WriterSink{w: w} }

func (s *WriterSink) Write(_ context.Context, record []byte) error {
	line := make([]byte, 0, len(record)+1)
	line = append(append(line, record...), '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	_, err := s.w.Write(line)
	return err
}

func (s *WriterSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
