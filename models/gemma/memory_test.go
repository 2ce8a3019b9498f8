package gemma

import (
	"encoding/json"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// Sizes that tell the counts apart: hidden 96, MLP 224, queries 4 x 40 = 160, keys 2 x 40 = 80.
const (
	memGemma1 = `{"model_type":"gemma","vocab_size":500,"hidden_size":96,"intermediate_size":224,"num_hidden_layers":4,
"num_attention_heads":4,"num_key_value_heads":2,"head_dim":40,"max_position_embeddings":512,"hidden_act":"gelu"}`
	memGemma2 = `{"model_type":"gemma2","vocab_size":500,"hidden_size":96,"intermediate_size":224,"num_hidden_layers":4,
"num_attention_heads":4,"num_key_value_heads":2,"head_dim":40,"max_position_embeddings":512,"sliding_window":16,"query_pre_attn_scalar":40}`
	memGemma3 = `{"model_type":"gemma3_text","vocab_size":500,"hidden_size":96,"intermediate_size":224,"num_hidden_layers":4,
"num_attention_heads":4,"num_key_value_heads":2,"head_dim":40,"max_position_embeddings":512,"sliding_window":16,"query_pre_attn_scalar":40}`
)

// The memory model never falls below what the graphs need (lmtest.GraphPeak), in either dtype,
// for scoring and training, and exceeds it only by the Go backend's measured extra (scoring:
// the attention's and the head's working sets about doubled; training: two more layers).
func TestMemoryModel(t *testing.T) {
	for _, cfg := range []string{memGemma1, memGemma2, memGemma3} {
		lmtest.CheckMemoryModelOfConfig(t, cfg, 3, 1.6)
	}
}

// The counts by hand on the benchmark model (bench_config.json: hidden 256, MLP 1024, 4 heads
// of 64 sharing 1 KV head, 8 layers, vocabulary 8192), float32, 2 rows of 256 tokens.
func TestActivationBytesByHand(t *testing.T) {
	cfg := `{"model_type":"gemma","vocab_size":8192,"hidden_size":256,"intermediate_size":1024,"num_hidden_layers":8,
"num_attention_heads":4,"num_key_value_heads":1,"head_dim":64,"max_position_embeddings":1024,"hidden_act":"gelu"}`
	arch, err := lm.NewArchitecture(json.RawMessage(cfg))
	if err != nil {
		t.Fatal(err)
	}
	mm := arch.(lm.MemoryModel)
	const tokens, rows, T = 512, 2, 256
	// Training, per layer: per token (2+4)*256 + 8*1024 + 2*256 + 2*64 + 4 + 2 = 10,374 floats;
	// per row (1+1)*4*256*256 floats and 4*256*256 mask bytes. Times 8+1 layers, plus the head:
	// 4*256 floats per token and the logits, 8,192 per token.
	layer := int64(tokens*10374*4 + rows*2*4*T*T*4 + rows*4*T*T)
	want := 9*layer + tokens*4*256*4 + tokens*8192*4
	if got := mm.ActivationBytes(rows, T, dtypes.Float32, true); got != want {
		t.Errorf("training: %d, want %d", got, want)
	}
	// Scoring: the head, 2.25 logits and a hidden vector per token, beats the attention, 8
	// float32 scores and a mask byte per pair and head plus 256 + 64 floats per token.
	head := int64(tokens*8192*4*9/4 + tokens*256*4)
	attn := int64(rows*4*T*T*(8*4+1) + tokens*(256+64)*4)
	if got := mm.ActivationBytes(rows, T, dtypes.Float32, false); got != max(head, attn) || head < attn {
		t.Errorf("scoring: %d, want max(head %d, attention %d)", got, head, attn)
	}
}

// gemma-2b (validConfig) scoring 2,048 tokens: the estimate docs/gemma.md quotes, and the graph
// of the real shapes within it.
func TestMemoryEstimate2B(t *testing.T) {
	arch, err := lm.NewArchitecture(json.RawMessage(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []lm.MemoryRequest{
		{Mode: lm.Scoring, Batch: 1, Length: 2048, DType: dtypes.BFloat16},
		{Mode: lm.Scoring, Batch: 1, Length: 2048, DType: dtypes.Float32},
		{Mode: lm.Scoring, Batch: 4, Length: 2048, DType: dtypes.BFloat16},
		{Mode: lm.Scoring, Batch: 1, Length: 512, DType: dtypes.BFloat16},
		{Mode: lm.Training, Batch: 1, Length: 2048, DType: dtypes.BFloat16},
		{Mode: lm.Training, Batch: 8, Length: 512, DType: dtypes.BFloat16},
	} {
		e := lm.EstimateMemory(arch, r)
		t.Logf("gemma-2b %s %d x %d %s: %s", r.Mode, r.Batch, r.Length, r.DType, e)
		if e.Weights != 2506172416*int64(r.DType.Size()) {
			t.Errorf("weights %d", e.Weights)
		}
	}
	lmtest.CheckMemoryModel(t, arch, lmtest.MemoryCase{Batch: 1, T: 2048, DType: dtypes.BFloat16, Max: 3})
}
