package zoo

import (
	"os"
	"path/filepath"
	"testing"
)

// The experiment configs under zoo/experiments (docs/zoo.md reports their runs) stay valid
// recipes: `perpetual zoo --config FILE` must still accept them.
func TestExperimentConfigsParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("experiments", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no experiment configs: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := ParseConfig(raw, f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(cfg.Names()) == 0 {
			t.Errorf("%s: no models", f)
		}
	}
}
