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
