package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
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
func (s *FileSink) open() error { return s.openFlags(s.path, syscall.O_CREAT) }

// openFlags opens name as the log with extra flags: 0 opens only an
// existing file.
func (s *FileSink) openFlags(name string, extra int) error {
	fd, err := syscall.Open(name, syscall.O_RDWR|syscall.O_APPEND|syscall.O_NOFOLLOW|
		syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY|extra, 0o600)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ELOOP):
			return fmt.Errorf("open audit log %s: it is a symbolic link; name the real file", s.path)
		case errors.Is(err, syscall.EISDIR):
			return fmt.Errorf("open audit log %s: it is a directory", s.path)
		case errors.Is(err, syscall.ENXIO):
			return fmt.Errorf("open audit log %s: it is not a regular file (a FIFO or socket)", s.path)
		}
		return fmt.Errorf("open audit log %s: %w", s.path, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("open audit log %s: %w", s.path, err)
	}
	refuse := func(why string) error {
		syscall.Close(fd)
		return fmt.Errorf("open audit log %s: %s", s.path, why)
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return refuse("it is not a regular file (" + fileType(uint32(st.Mode)) + ")")
	case int(st.Uid) != os.Geteuid():
		return refuse("it is owned by uid " + strconv.Itoa(int(st.Uid)) + ", not by this user")
	case st.Nlink > 1:
		return refuse("it has " + strconv.Itoa(int(st.Nlink)) + " hard links; an audit log has one")
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		return refuse(err.Error())
	}
	if st.Mode&0o777 != 0o600 {
		if err := syscall.Fchmod(fd, 0o600); err != nil {
			return refuse(err.Error())
		}
	}
	s.f = os.NewFile(uintptr(fd), s.path)
	s.dev, s.ino, s.size = uint64(st.Dev), uint64(st.Ino), st.Size
	return nil
}

func fileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return "a FIFO"
	case syscall.S_IFCHR:
		return "a character device"
	case syscall.S_IFBLK:
		return "a block device"
	case syscall.S_IFDIR:
		return "a directory"
	case syscall.S_IFSOCK:
		return "a socket"
	}
	return "not a regular file"
}

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
		fd := int(s.f.Fd())
		if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
			return nil, false, false, fmt.Errorf("lock %s: %w", s.path, err)
		}
		if s.rotatedAway() {
			// Another server rotated the log while this one waited: write
			// on in the new file, continuing from its last record.
			syscall.Flock(fd, syscall.LOCK_UN)
			prev := s.f
			// The rotating server creates the new file; until it has, wait
			// (creating it here would start a chain beside its own).
			if err := s.openFlags(s.path, 0); err != nil {
				if !errors.Is(err, syscall.ENOENT) {
					return nil, false, false, err
				}
				time.Sleep(time.Millisecond)
				continue
			}
			prev.Close()
			followed = true
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			syscall.Flock(fd, syscall.LOCK_UN)
			return nil, false, false, fmt.Errorf("%s: %w", s.path, err)
		}
		if !followed && st.Size <= s.size {
			return nil, false, false, nil // nobody else wrote (a shorter file fails the write's check)
		}
		s.size = st.Size
		s.last, s.torn = nil, false
		if err := s.readTail(); err != nil {
			syscall.Flock(fd, syscall.LOCK_UN)
			return nil, false, false, fmt.Errorf("%s: %w", s.path, err)
		}
		return s.last, true, s.torn, nil
	}
	return nil, false, false, fmt.Errorf("%w: %s keeps being rotated under this server", ErrReplaced, s.path)
}

func (s *FileSink) unlock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		syscall.Flock(int(s.f.Fd()), syscall.LOCK_UN)
	}
}

// tailWindow is how much of the file's end is read to find its last line.
const tailWindow = 1 << 20

// readTail finds the last complete line. A file ending in a partial line
// gets a newline, so that the next record starts a line of its own.
func (s *FileSink) readTail() error {
	if s.size == 0 {
		return nil
	}
	n := min(s.size, tailWindow)
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
	start := 0
	for i := len(buf) - 1; i >= 0; i-- {
		if buf[i] == '\n' {
			start = i + 1
			break
		}
	}
	if start == 0 && n < s.size {
		s.torn = true // a last line longer than the window: not ours
		return nil
	}
	s.last = buf[start:]
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
	var st syscall.Stat_t
	if err := syscall.Lstat(s.path, &st); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrReplaced, s.path, err)
	}
	if uint64(st.Dev) != s.dev || uint64(st.Ino) != s.ino {
		return fmt.Errorf("%w: %s", ErrReplaced, s.path)
	}
	// Others may append (another server on the same log), but nobody may
	// cut what is written: a shorter file was truncated or rewritten in
	// place.
	if st.Size < s.size {
		return fmt.Errorf("%w: %s holds %d bytes, fewer than the %d written to it: it was truncated or rewritten", ErrReplaced, s.path, st.Size, s.size)
	}
	return nil
}

// Write appends record and a newline in one write call, after checking
// that the path still names the open file.
func (s *FileSink) Write(_ context.Context, record []byte) error {
	line := make([]byte, 0, len(record)+1)
	line = append(append(line, record...), '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.check(); err != nil {
		return err
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
	if err := s.openFlags(next, syscall.O_CREAT|syscall.O_EXCL); err != nil {
		s.f = prev
		return "", err
	}
	if err := syscall.Flock(int(s.f.Fd()), syscall.LOCK_EX); err != nil {
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

// rotatedAway reports whether another writer rotated the log: the path
// names another file and the file this sink holds is now one of the
// rotated ones (path.1, path.2, ...: it may have been rotated more than
// once while this sink waited).
func (s *FileSink) rotatedAway() bool {
	var cur syscall.Stat_t
	err := syscall.Lstat(s.path, &cur)
	switch {
	case err == nil && uint64(cur.Dev) == s.dev && uint64(cur.Ino) == s.ino:
		return false // still the log
	case err != nil && !errors.Is(err, syscall.ENOENT):
		return false
	}
	// The path names another file, or none yet (mid-rotation).
	// Every name is looked at: a rotation in progress renames them one by
	// one, and leaves gaps for a moment.
	for i := 1; i <= s.opts.Retention; i++ {
		var st syscall.Stat_t
		if err := syscall.Lstat(s.path+"."+strconv.Itoa(i), &st); err == nil && uint64(st.Dev) == s.dev && uint64(st.Ino) == s.ino {
			return true
		}
	}
	return false
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
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
