// Package atomicfile is the one way the project writes a file or makes a folder that must never
// be seen half-written: the content goes to a temporary sibling, is synced to disk, gets the
// project's permissions (files FileMode, folders DirMode, whatever the process umask or
// os.CreateTemp/MkdirTemp defaults) and is renamed into place, and the parent folder is synced so
// the rename survives a crash. A failure leaves the old file (or nothing) and no temporary file.
package atomicfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FileMode and DirMode are the permissions of everything the project writes: readable by
// everyone, as results, caches and models are shared between users and tools.
const (
	FileMode os.FileMode = 0o644
	DirMode  os.FileMode = 0o755
)

// WriteFile writes data to path atomically (see the package comment), creating its folder.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteJSON writes v as indented JSON with a final newline, atomically.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return WriteFile(path, append(data, '\n'))
}

// Write streams fill's output to path atomically: if fill fails, path is left as it was.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(FileMode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return SyncDir(dir)
}

// TempDir makes a fresh folder named "."+base+".tmp-*" in parent (created if missing) with
// DirMode permissions, for a folder that will be renamed into place when complete.
func TempDir(parent, base string) (string, error) {
	if err := MkdirAll(parent); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, DirMode); err != nil { // MkdirTemp makes it 0700
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// MkdirAll is os.MkdirAll with every folder it creates given DirMode (os.MkdirAll's modes are
// cut by the umask).
func MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a folder", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, DirMode); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.Chmod(dir, DirMode)
}

// SyncDir flushes a folder's entries (renames into it) to disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// ReplaceDir moves the finished folder tmp (made with TempDir beside dir) to dir. An existing dir
// is moved aside first and restored if the second rename fails, so dir's path always leads to a
// complete folder, old or new (for an instant to none, with the old one beside it); the old one
// is removed afterwards and the parent synced.
func ReplaceDir(tmp, dir string) error {
	old := ""
	if _, err := os.Lstat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("replacing %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		return fmt.Errorf("replacing %s: %w", dir, err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return err
		}
	}
	return SyncDir(filepath.Dir(dir))
}

// CreateDir makes dir with build unless complete(dir) says it is there already: build fills a
// TempDir sibling, renamed into place when it succeeds, so dir is never half-made; when two
// builders race, the first complete folder stays. The temporary folder is removed on failure.
func CreateDir(dir string, complete func(dir string) bool, build func(tmp string) error) error {
	if complete(dir) {
		return nil
	}
	tmp, err := TempDir(filepath.Dir(dir), filepath.Base(dir))
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := build(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if complete(dir) {
			return nil // another builder finished first
		}
		return err
	}
	return SyncDir(filepath.Dir(dir))
}
