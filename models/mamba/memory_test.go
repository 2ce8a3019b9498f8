package mamba

import (
	"encoding/json"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// The memory model never falls below what the graphs need (lmtest.GraphPeak), in either dtype:
// training by the counts plus one layer; scoring by the Go backend's measured working set, far
// above the graph's creation-order minimum (docs/mamba.md).
func TestMemoryModel(t *testing.T) {
	cfg := `{"model_type":"mamba","vocab_size":500,"hidden_size":40,"num_hidden_layers":4,"state_size":6,"expand":2,"conv_kernel":4}`
	lmtest.CheckMemoryModelOfConfig(t, cfg, 8, 1.4)
}

// The counts by hand on the benchmark model (bench_config.json: hidden 256, d_inner 512, state
// 16, 18 layers, vocabulary 8192), float32, 2 rows of 256 tokens: a scan unit is
// 512*16 = 8,192 floats per token.
func TestActivationBytesByHand(t *testing.T) {
	cfg := `{"model_type":"mamba","vocab_size":8192,"hidden_size":256,"num_hidden_layers":18,"state_size":16,"expand":2,"conv_kernel":4}`
	arch, err := lm.NewArchitecture(json.RawMessage(cfg))
	if err != nil {
		t.Fatal(err)
	}
	mm := arch.(lm.MemoryModel)
	tokens := 512.0
	// Training, per layer and token: 3.25 units, 27 d_inner vectors, 3 hidden ones and 8 x 16
	// state rows: 26,624 + 13,824 + 768 + 128 = 41,344 floats. Times 18+1 layers, plus the
	// head: 3 hidden vectors and the logits.
	want := int64(19*tokens*41344*4 + tokens*(3*256+8192)*4)
	if got := mm.ActivationBytes(2, 256, dtypes.Float32, true); got != want {
		t.Errorf("training: %d, want %d", got, want)
	}
	// Scoring: 7 units and 2 hidden vectors per token beat the head's 2.25 logits.
	want = int64(tokens * (7*8192 + 2*256) * 4)
	if got := mm.ActivationBytes(2, 256, dtypes.Float32, false); got != want {
		t.Errorf("scoring: %d, want %d", got, want)
	}
}
