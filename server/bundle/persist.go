package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of the persisted last good bundle in Config.StateDir.
const (
	persistedBundle = "bundle.tar.gz"
	persistedETag   = "bundle.etag"
)

// persist writes the last good bundle's bytes and ETag, each atomically.
func persist(dir string, tarball []byte, etag string) error {
	if dir == "" {
		return nil
	}
	if err := stateDir(dir); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, persistedBundle), tarball); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, persistedETag), []byte(etag))
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("persist bundle: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("persist bundle: %w", err)
	}
	return nil
}

// loadPersisted reads the persisted bundle bytes and ETag; ok is false
// when nothing was persisted.
func loadPersisted(dir string) (tarball []byte, etag string, ok bool, err error) {
	if dir == "" {
		return nil, "", false, nil
	}
	tarball, err = os.ReadFile(filepath.Join(dir, persistedBundle))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("persisted bundle: %w", err)
	}
	e, err := os.ReadFile(filepath.Join(dir, persistedETag))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, fmt.Errorf("persisted bundle: %w", err)
	}
	return tarball, string(e), true, nil
}

// stateDir makes dir, the server's own (0700).
func stateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("persist bundle: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("persist bundle: %w", err)
	}
	return nil
}
