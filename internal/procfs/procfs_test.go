package procfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(path, []byte("MemTotal:       24683828 kB\nMemAvailable:   22107000 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Bytes(path, "MemAvailable:"); got != 22107000*1024 {
		t.Errorf("MemAvailable %d", got)
	}
	if Bytes(path, "VmHWM:") != 0 || Bytes(filepath.Join(t.TempDir(), "none"), "MemAvailable:") != 0 {
		t.Error("a missing field or file is not 0")
	}
}
