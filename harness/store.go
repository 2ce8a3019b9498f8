package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// CodeVersion is mixed into every cache key: bump it when a change to the harness (or to how it
// calls the packages) changes results, so old cells are not reused.
const CodeVersion = "harness-v1"

// keyOf hashes the JSON of its parts (with CodeVersion) into a hex key.
func keyOf(parts ...any) string {
	h := sha256.New()
	h.Write([]byte(CodeVersion))
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			panic(fmt.Sprintf("harness: unhashable key part %T: %v", p, err)) // programming error: keys are plain data
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeAtomic and writeJSON are the project's atomic writes (package atomicfile).
func writeAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data) }

func writeJSON(path string, v any) error { return atomicfile.WriteJSON(path, v) }

// readJSON reads a JSON file into v; errors name the file.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// buildDir makes dir by running build on a fresh temporary folder beside it and renaming it into
// place, so a killed build leaves no half-made dir. An existing dir is kept as it is.
func buildDir(dir string, build func(tmp string) error) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	exists := func(d string) bool { _, err := os.Stat(d); return err == nil }
	return atomicfile.CreateDir(dir, exists, build)
}

// copyFile copies src to dst atomically.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeAtomic(dst, b)
}
