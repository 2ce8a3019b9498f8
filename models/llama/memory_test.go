package llama

import (
	"encoding/json"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// The memory model never falls below what the graphs need (lmtest.GraphPeak) for Llama (with
// every bias), Qwen2 and Qwen3 (q/k norms), in either dtype, for scoring and training, and
// exceeds it only by the Go backend's measured extra. Sizes that tell the counts apart: hidden
// 96, MLP 224, queries 4 x 40 = 160, keys 2 x 40 = 80.
func TestMemoryModel(t *testing.T) {
	sizes := `"vocab_size":500,"hidden_size":96,"intermediate_size":224,"num_hidden_layers":4,
"num_attention_heads":4,"num_key_value_heads":2,"head_dim":40,"max_position_embeddings":512`
	for _, extra := range []string{
		`"model_type":"llama","attention_bias":true,"mlp_bias":true`,
		`"model_type":"qwen2"`,
		`"model_type":"qwen3","tie_word_embeddings":true`,
	} {
		lmtest.CheckMemoryModelOfConfig(t, "{"+extra+","+sizes+"}", 3, 1.6)
	}
}

// The counts by hand on bench_config_llama.json (hidden 256, MLP 1024, 4 heads of 64, 2 KV
// heads, 8 layers, vocabulary 8192, untied head), float32, 4 rows of 256 tokens.
func TestActivationBytesByHand(t *testing.T) {
	cfg := `{"model_type":"llama","vocab_size":8192,"hidden_size":256,"intermediate_size":1024,"num_hidden_layers":8,
"num_attention_heads":4,"num_key_value_heads":2,"head_dim":64,"max_position_embeddings":4096}`
	arch, err := lm.NewArchitecture(json.RawMessage(cfg))
	if err != nil {
		t.Fatal(err)
	}
	mm := arch.(lm.MemoryModel)
	const tokens, rows, T = 1024, 4, 256
	// Training, per layer: per token (4+2)*256 + 5*1024 + 2*256 + 2*128 + 4 + 2 = 7,430 floats;
	// per row (1+1)*4*256*256 floats and 4*256*256 mask bytes. Times 8+1 layers, plus the head:
	// 3*256 floats per token and the logits, 8,192 per token.
	layer := int64(tokens*7430*4 + rows*2*4*T*T*4 + rows*4*T*T)
	want := 9*layer + tokens*3*256*4 + tokens*8192*4
	if got := mm.ActivationBytes(rows, T, dtypes.Float32, true); got != want {
		t.Errorf("training: %d, want %d", got, want)
	}
	// Scoring: the head (2.25 logits and a hidden vector per token) beats the attention (8 float32
	// scores and a mask byte per pair and head, 256 + 128 floats per token).
	head := int64(tokens*8192*4*9/4 + tokens*256*4)
	attn := int64(rows*4*T*T*(8*4+1) + tokens*(256+128)*4)
	if got := mm.ActivationBytes(rows, T, dtypes.Float32, false); got != max(head, attn) || head < attn {
		t.Errorf("scoring: %d, want max(head %d, attention %d)", got, head, attn)
	}
}
