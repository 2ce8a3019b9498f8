package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/zoo"
)

// The harness's zoo:NAME resolves to the committed zoo checkpoint (copied out, with its
// manifest) for every model committed for the current recipe.
func TestZooRegisteredWithHarness(t *testing.T) {
	cfg, err := zoo.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range cfg.Names() {
		if !zoo.Committed(cfg, name) {
			// gemma-tiny is committed: a recipe change must come with `make zoo`.
			if name == "gemma-tiny" {
				t.Errorf("%s: zoo/checkpoints has no checkpoint for the current zoo/config.yaml (run make zoo)", name)
			}
			continue
		}
		dir, err := harness.ResolveModel("zoo:"+name, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		version, _ := zoo.Version(cfg, name)
		if !strings.HasSuffix(dir, name+"-"+version) {
			t.Errorf("%s resolved to %s, want the zoo's version %s", name, dir, version)
		}
		for _, f := range []string{"model.safetensors", "tokenizer.json", zoo.ManifestFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestZooCommandUnknownModel(t *testing.T) {
	msg, err := runCLI(t, "zoo", "--name", "nope", "--out", t.TempDir())
	if err == nil || !strings.Contains(err.Error()+msg, "nope") {
		t.Fatalf("error %v\n%s", err, msg)
	}
}
