package audit

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// keySize is the size of the fingerprint key in bytes.
const keySize = 32

// KeyPath is where the fingerprint key of an audit log lives: audit.key in
// the log's directory, which the server creates 0700.
func KeyPath(logFile string) string { return filepath.Join(filepath.Dir(logFile), "audit.key") }

// LoadKey reads the fingerprint key at path, creating it (32 random
// bytes, mode 0600, exclusively) if it does not exist. It refuses a path
// that is a symbolic link or not a regular file, a file not owned by this
// user or readable or writable by anyone else, and a file of the wrong
// size: a key others can read would let them confirm guesses at a
// redacted secret, and one they can write would let them choose it.
func LoadKey(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	f, err := openNoFollow(path, os.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		if errors.Is(err, errSymlink) {
			return nil, fmt.Errorf("audit key %s: it is a symbolic link", path)
		}
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	defer f.Close()
	st, err := statFile(f)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	switch {
	case st.kind != "":
		return nil, fmt.Errorf("audit key %s: it is not a regular file (%s)", path, st.kind)
	case ownership && st.owner != os.Geteuid():
		return nil, fmt.Errorf("audit key %s: it is owned by uid %d, not by this user", path, st.owner)
	case ownership && st.perm&0o077 != 0:
		return nil, fmt.Errorf("audit key %s: mode %o lets others use it; want 0600 (chmod 600 %s)", path, st.perm, path)
	case st.size != keySize:
		return nil, fmt.Errorf("audit key %s: %d bytes, want %d", path, st.size, keySize)
	}
	key := make([]byte, keySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	return key, nil
}

// createKey writes a new key to a temporary file and links it into place,
// so a server starting at the same moment either finds no key or a whole
// one; if another server linked its key first, that key is used.
func createKey(path string) ([]byte, error) {
	key := make([]byte, keySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit.key-*")
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadKey(path)
		}
		return nil, fmt.Errorf("audit key: %w", err)
	}
	return key, nil
}
