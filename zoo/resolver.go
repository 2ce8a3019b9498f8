package zoo

import (
	"context"
	"fmt"
)

// Resolver is the one resolver of "zoo:NAME" model paths (harness.Zoo): the CLI, the notebooks
// and any Go caller hand it to the harness, so `zoo:gemma-tiny` means the same committed
// weights everywhere. A model whose committed checkpoint does not match the current recipe is
// an error unless Train is set (then it is trained into the cache, which takes far longer than
// `make results`' budget on two cores).
type Resolver struct {
	// Config is the zoo recipe (nil: the embedded zoo/config.yaml).
	Config *Config
	// Train builds models without a matching committed checkpoint instead of failing.
	Train bool
	// Options are passed to a build (progress).
	Options Options
	// Context bounds a build (nil: background).
	Context context.Context
}

// Resolve returns the folder of zoo model name under cacheDir (NAME-RECIPEHASH), copying the
// committed checkpoint out (or training it, with Train) the first time.
func (r *Resolver) Resolve(name, cacheDir string) (string, error) {
	cfg := r.Config
	if cfg == nil {
		var err error
		if cfg, err = DefaultConfig(); err != nil {
			return "", err
		}
	}
	if _, ok := cfg.Models[name]; !ok {
		return "", fmt.Errorf("zoo: no model %q (have %v)", name, cfg.Names())
	}
	if !Committed(cfg, name) && !r.Train {
		hash, _ := cfg.RecipeHash(name)
		return "", fmt.Errorf("zoo: %s has no committed checkpoint for the current recipe (hash %s): run `make zoo` (or `perpetual zoo --name %s`) and commit zoo/checkpoints/%s, or set PERPETUAL_ZOO_TRAIN=1 to train it on first use", name, hash, name, name)
	}
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	return ensure(ctx, cfg, name, cacheDir, r.Options)
}
