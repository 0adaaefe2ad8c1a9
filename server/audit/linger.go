package audit

import "time"

// The file lock lingers. Taking and dropping the advisory lock costs two
// system calls per batch, and where system calls are slow (a few µs each
// in some virtual machines) that is a large part of a call. So a batch
// does not drop the lock: it is dropped once no batch has come for
// lockLinger (off the path of any call), or before the next batch once
// it has been held for lockHoldMax, so that other servers on the same
// log get their turn. While the lock is held nobody else can append, and
// every batch still checks that the path names the open file and how
// long it is (one lstat), so nothing about what is checked changes:
// only when the lock is dropped.

const (
	lockLinger  = time.Millisecond
	lockHoldMax = 10 * time.Millisecond
	// lockYield is how long a server that held the lock for lockHoldMax
	// waits before taking it again, so that a waiting server can.
	lockYield = 200 * time.Microsecond
)

// takeLock takes the file lock unless this sink still holds it. The
// caller holds s.mu.
func (s *FileSink) takeLock() error {
	if s.held && time.Since(s.heldSince) > lockHoldMax {
		s.dropLock()
		s.mu.Unlock()
		time.Sleep(lockYield)
		s.mu.Lock()
		if s.closed {
			return ErrClosed
		}
	}
	s.inBatch = true
	if s.held {
		return nil
	}
	if err := lockFile(s.f); err != nil {
		s.inBatch = false
		return err
	}
	s.held, s.heldSince = true, time.Now()
	return nil
}

// dropLock drops the file lock now. The caller holds s.mu.
func (s *FileSink) dropLock() {
	s.inBatch = false
	if s.held {
		unlockFile(s.f)
		s.held = false
	}
}

// lingerLock ends a batch and keeps the lock for lockLinger. The caller
// holds s.mu.
func (s *FileSink) lingerLock() {
	s.inBatch = false
	if !s.held {
		return
	}
	if s.release == nil {
		s.release = time.AfterFunc(lockLinger, s.releaseIdle)
		return
	}
	s.release.Reset(lockLinger)
}

// releaseIdle drops the lock unless a batch is under way.
func (s *FileSink) releaseIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held && !s.inBatch && !s.closed {
		s.dropLock()
	}
}
