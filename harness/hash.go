package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// folderHasher hashes the files of model folders that define a model (config, weights,
// tokenizer), remembering each file's hash by size and modification time in a JSON file, so a
// multi-gigabyte checkpoint is read once, not on every run.
type folderHasher struct {
	mu    sync.Mutex
	path  string
	memo  map[string]fileMemo
	dirty bool
}

type fileMemo struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

func newFolderHasher(path string) *folderHasher {
	fh := &folderHasher{path: path, memo: map[string]fileMemo{}}
	_ = readJSON(path, &fh.memo) // a missing or unreadable memo only costs re-hashing
	if fh.memo == nil {
		fh.memo = map[string]fileMemo{}
	}
	return fh
}

// modelFile reports whether a file is part of a model's identity.
func modelFile(name string) bool {
	switch name {
	case "config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
		"vocab.txt": // BERT's WordPiece vocabulary
		return true
	}
	return strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".safetensors.index.json")
}

// Hash returns a SHA-256 over the names and contents of dir's model files.
func (fh *folderHasher) Hash(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("hashing model folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && modelFile(e.Name()) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("model folder %s: no config.json or weights", dir)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fileHash, err := fh.file(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%s\n", n, fileHash)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (fh *folderHasher) file(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	abs, _ := filepath.Abs(path)
	fh.mu.Lock()
	m, ok := fh.memo[abs]
	fh.mu.Unlock()
	if ok && m.Size == st.Size() && m.ModTime == st.ModTime().UnixNano() {
		return m.SHA256, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	fh.mu.Lock()
	fh.memo[abs] = fileMemo{Size: st.Size(), ModTime: st.ModTime().UnixNano(), SHA256: sum}
	fh.dirty = true
	fh.mu.Unlock()
	return sum, nil
}

// Save writes the memo if it changed.
func (fh *folderHasher) Save() error {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if !fh.dirty {
		return nil
	}
	fh.dirty = false
	return writeJSON(fh.path, fh.memo)
}
