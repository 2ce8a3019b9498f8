package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Files get FileMode and folders DirMode whatever the umask; a failed write leaves the old
// content and no temporary file behind.
func TestPermissionsAndRollback(t *testing.T) {
	old := syscall.Umask(0o077) // a strict umask, as on shared servers
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "x.json")
	if err := WriteJSON(path, map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: FileMode, dir: DirMode} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "{\n  \"n\": 1\n}\n" {
		t.Fatalf("content after a failed write: %q", data)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	tmp, err := TempDir(dir, "folder")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(tmp); st.Mode().Perm() != DirMode {
		t.Errorf("TempDir mode %v", st.Mode().Perm())
	}
}

// ReplaceDir swaps a finished folder in for the old one; CreateDir builds once, keeps a complete
// folder, and leaves nothing behind when the build fails.
func TestReplaceAndCreateDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "index")
	for _, content := range []string{"old", "new"} {
		tmp, err := TempDir(parent, "index")
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(filepath.Join(tmp, "f"), []byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := ReplaceDir(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "f")); string(data) != "new" {
		t.Fatalf("after replacing: %q", data)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Fatalf("left beside the folder: %v", ents)
	}
	complete := func(d string) bool { _, err := os.Stat(filepath.Join(d, "done")); return err == nil }
	made := filepath.Join(parent, "made")
	builds := 0
	build := func(tmp string) error { builds++; return WriteFile(filepath.Join(tmp, "done"), nil) }
	for range 2 {
		if err := CreateDir(made, complete, build); err != nil {
			t.Fatal(err)
		}
	}
	if builds != 1 || !complete(made) {
		t.Fatalf("%d builds, complete %v", builds, complete(made))
	}
	boom := errors.New("boom")
	if err := CreateDir(filepath.Join(parent, "failed"), complete, func(string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 2 {
		t.Fatalf("a failed build left %v", ents)
	}
}
