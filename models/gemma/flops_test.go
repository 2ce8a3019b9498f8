package gemma_test

import (
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// benchFLOPs is the bench config (testdata/bench_config.json) on a row of 256 tokens, by hand
// (docs/benchmarks.md, "FLOP counts"): per token and layer q 2·256·256 + k, v 2·2·256·64 + o
// 2·256·256 + MLP 3·2·256·1024 = 1,900,544, x 256 tokens x 8 layers; attention 2·2·256·256² x 8
// layers; head 2·256·8192 x 256 tokens.
const benchFLOPs = 1_900_544*256*8 + 2*2*256*256*256*8 + 2*256*8192*256 // 5,502,926,848

// LogitsFLOPs of Gemma v1, 2 and 3 counts what the family's Logits graph multiplies: every
// DotGeneral it builds (lmtest.MatmulFLOPs), on every fixture (multi-head, multi-query,
// grouped, sliding layers, q/k norms) and the bench and flop-check configs; the flop-check
// configs of Gemma 2 and 3 have the bench config's shapes, so they count its FLOPs.
func TestLogitsFLOPsMatchTheGraph(t *testing.T) {
	var paths []string
	for _, glob := range []string{"testdata/*/config.json", "testdata/bench_config*.json", "testdata/flop_config_*.json"} {
		matches, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, matches...)
	}
	sameAsBench := 0
	for path, counter := range lmtest.CheckLogitsFLOPs(t, paths...) {
		if base := filepath.Base(path); base == "bench_config.json" || filepath.Ext(base) == ".json" && len(base) > 12 && base[:12] == "flop_config_" {
			sameAsBench++
			if got := counter.LogitsFLOPs(256); got != benchFLOPs {
				t.Errorf("%s: %v FLOPs per row of 256, want the bench config's %v", path, got, float64(benchFLOPs))
			}
		}
	}
	if sameAsBench != 3 {
		t.Errorf("%d configs of the bench shapes, want bench_config.json and the flop-check configs of Gemma 2 and 3", sameAsBench)
	}
}
