package audit

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
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

// FileSink appends JSON Lines to a file.
type FileSink struct {
	// Sync, if set, fsyncs after every record.
	Sync bool

	mu     sync.Mutex
	f      *os.File
	closed bool
}

var _ Sink = (*FileSink)(nil)

// OpenFile opens (creating if needed) the audit file at path for
// appending. A created directory gets mode 0700; the file is made 0600
// whatever the umask, and an existing file is tightened to 0600.
func OpenFile(path string) (*FileSink, error) {
	if path == "" {
		return nil, fmt.Errorf("open audit log: empty path")
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	return &FileSink{f: f}, nil
}

// Write appends record and a newline in one write call.
func (s *FileSink) Write(_ context.Context, record []byte) error {
	line := make([]byte, 0, len(record)+1)
	line = append(append(line, record...), '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.f.Write(line); err != nil {
		return err
	}
	if s.Sync {
		return s.f.Sync()
	}
	return nil
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
