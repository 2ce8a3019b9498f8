// Package checkpoint reads and writes Hugging Face model folders: config.json plus weights in
// one model.safetensors or in shards listed by model.safetensors.index.json, and the tokenizer
// files beside them. It resolves Hugging Face cache folders (models--ORG--NAME) to a snapshot,
// converts tensors between the checkpoint dtype and the compute dtype (F32, BF16, F16), and saves
// checkpoints atomically so an interrupted save never leaves a half-written model.
//
// Errors name the file (and tensor) at fault. The safetensors format itself is handled by
// models/safetensors; GoMLX tensors (github.com/gomlx/gomlx/core/tensors) are the in-memory form.
package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ConfigFile is the name of the model configuration file.
const ConfigFile = "config.json"

// Resolve turns a model location into the folder holding config.json. It accepts a plain model
// folder, a Hugging Face cache repository folder (models--ORG--NAME, resolved through
// refs/main, or its only snapshot), or a snapshot folder itself.
func Resolve(dir string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("model folder: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("model folder %s: not a directory", dir)
	}
	if fileExists(filepath.Join(dir, ConfigFile)) {
		return dir, nil
	}
	snapshots := filepath.Join(dir, "snapshots")
	if !isDir(snapshots) {
		return "", fmt.Errorf("model folder %s: no %s (and not a Hugging Face cache folder models--ORG--NAME with snapshots/)", dir, ConfigFile)
	}
	if ref, err := os.ReadFile(filepath.Join(dir, "refs", "main")); err == nil {
		rev := strings.TrimSpace(string(ref))
		if rev == "" || strings.ContainsAny(rev, `/\`) || rev == "." || rev == ".." {
			return "", fmt.Errorf("%s: invalid revision %q", filepath.Join(dir, "refs", "main"), rev)
		}
		snap := filepath.Join(snapshots, rev)
		if !fileExists(filepath.Join(snap, ConfigFile)) {
			return "", fmt.Errorf("%s: refs/main points to snapshot %s, which has no %s", dir, rev, ConfigFile)
		}
		return snap, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	entries, err := os.ReadDir(snapshots)
	if err != nil {
		return "", err
	}
	var found []string
	for _, e := range entries {
		p := filepath.Join(snapshots, e.Name())
		if isDir(p) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: no snapshots", snapshots)
	case 1:
		if !fileExists(filepath.Join(found[0], ConfigFile)) {
			return "", fmt.Errorf("%s: no %s", found[0], ConfigFile)
		}
		return found[0], nil
	}
	return "", fmt.Errorf("%s: %d snapshots and no refs/main; pass the snapshot folder", snapshots, len(found))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
