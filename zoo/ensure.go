package zoo

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	// The zoo's families register themselves with lm.
	_ "github.com/perpetual-ml/perpetual/models/gemma"
	_ "github.com/perpetual-ml/perpetual/models/mamba"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

//go:embed checkpoints
var checkpoints embed.FS

// Committed reports whether a checkpoint of name made by the current recipe is embedded.
func Committed(cfg *Config, name string) bool {
	hash, err := cfg.RecipeHash(name)
	if err != nil {
		return false
	}
	data, err := checkpoints.ReadFile(path.Join("checkpoints", name, ManifestFile))
	if err != nil {
		return false
	}
	var m Manifest
	return json.Unmarshal(data, &m) == nil && m.RecipeHash == hash
}

// Materialize writes zoo model name into dir: the committed checkpoint when it matches the
// recipe, otherwise a fresh Build (minutes on two cores).
func Materialize(ctx context.Context, cfg *Config, name, dir string, opt Options) error {
	if !Committed(cfg, name) {
		_, err := Build(ctx, cfg, name, dir, opt)
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := path.Join("checkpoints", name)
	entries, err := fs.ReadDir(checkpoints, root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := checkpoints.ReadFile(path.Join(root, e.Name()))
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, e.Name()), data); err != nil {
			return err
		}
	}
	return nil
}

// Version is the folder-name version of model name: its recipe hash.
func Version(cfg *Config, name string) (string, error) { return cfg.RecipeHash(name) }

// Ensure returns cacheDir/NAME-HASH for the embedded recipe, materialising it first
// (atomically: a temporary folder renamed into place) when it does not exist yet.
func Ensure(ctx context.Context, name, cacheDir string, opt Options) (string, error) {
	cfg, err := DefaultConfig()
	if err != nil {
		return "", err
	}
	return ensure(ctx, cfg, name, cacheDir, opt)
}

func ensure(ctx context.Context, cfg *Config, name, cacheDir string, opt Options) (string, error) {
	hash, err := cfg.RecipeHash(name)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir, name+"-"+hash)
	err = BuildOnce(dir, func(tmp string) error {
		if err := Materialize(ctx, cfg, name, tmp, opt); err != nil {
			return fmt.Errorf("zoo %s: %w", name, err)
		}
		return nil
	})
	return dir, err
}

// BuildOnce makes model folder dir with build unless it holds a model already (config.json):
// build writes into a fresh sibling folder, renamed into place when it succeeds, so dir is never
// half-written and concurrent builders keep the first complete folder.
func BuildOnce(dir string, build func(tmp string) error) error {
	hasModel := func(d string) bool { _, err := os.Stat(filepath.Join(d, "config.json")); return err == nil }
	return atomicfile.CreateDir(dir, hasModel, build)
}
