package llama

import (
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// gemmaBenchFLOPs is Gemma v1's bench config (models/gemma/testdata/bench_config.json) on a row
// of 256 tokens, by hand (docs/benchmarks.md, "FLOP counts"): per token and layer q 2·256·256 +
// k, v 2·2·256·64 + o 2·256·256 + MLP 3·2·256·1024 = 1,900,544, x 256 tokens x 8 layers; attention
// 2·2·256·256² x 8 layers; head 2·256·8192 x 256 tokens.
const gemmaBenchFLOPs = 1_900_544*256*8 + 2*2*256*256*256*8 + 2*256*8192*256 // 5,502,926,848

// LogitsFLOPs counts what the family's Logits graph multiplies: every DotGeneral the graph
// builds (lmtest.MatmulFLOPs), on the fixtures (biases, q/k norms, tied and untied heads,
// grouped-query attention) and the flop-check configs. The flop-check configs have Gemma v1's
// bench shapes, so they count its FLOPs: throughput per FLOP compares like with like.
func TestLogitsFLOPsMatchTheGraph(t *testing.T) {
	configs, err := filepath.Glob("testdata/*/config.json")
	if err != nil {
		t.Fatal(err)
	}
	flopConfigs, err := filepath.Glob("testdata/flop_config_*.json")
	if err != nil || len(flopConfigs) != 3 {
		t.Fatalf("flop-check configs %v (%v), want llama, qwen2 and qwen3", flopConfigs, err)
	}
	for path, counter := range lmtest.CheckLogitsFLOPs(t, append(configs, flopConfigs...)...) {
		if filepath.Dir(path) == "testdata" {
			if got := counter.LogitsFLOPs(256); got != gemmaBenchFLOPs {
				t.Errorf("%s: %v FLOPs per row of 256, want Gemma v1's bench config's %v", path, got, float64(gemmaBenchFLOPs))
			}
		}
	}
}
