package llama

import (
	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/internal/attention"
	"github.com/perpetual-ml/perpetual/models/lm"
)

var _ lm.MemoryModel = (*Model)(nil)

// ActivationBytes implements lm.MemoryModel, counted on the graph (lmtest.GraphPeak;
// TestMemoryModel keeps the counts honest). Training keeps, per layer and token, in the compute
// dtype 4 hidden-size vectors (the norms' cast-back outputs and the normed inputs of attention
// and MLP), 5 intermediate-size ones (gate, its sigmoid and SiLU, up, their product), 2
// query-sized and 2 key-sized ones (rotated, grouped), and in float32 2 hidden-size vectors, 2
// numbers (the norms' statistics) and one number per head; Qwen3's q/k norms add a query-sized
// and a key-sized vector in each dtype and their statistics. Per layer and row: one score-sized
// tensor in the compute dtype, one in float32 and the boolean mask broadcast to them. Biases
// change nothing. The layer being differentiated works beside them: one more layer. The head
// keeps the final norm's tensors and the float32 logits. Scoring is the larger of a block's
// working set (attention.ScoringBytes) and the head's (attention.HeadScoringBytes).
func (m *Model) ActivationBytes(batch, T int, dtype dtypes.DType, training bool) int64 {
	c := m.cfg
	s := attention.ActivationShape{Batch: batch, T: T, Hidden: c.HiddenSize, Inter: c.IntermediateSize,
		Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim}
	elem := int(dtype.Size())
	logits := attention.LogitsBytes(s, c.VocabSize)
	if !training {
		return max(attention.ScoringBytes(s, elem, 0), attention.HeadScoringBytes(s, c.VocabSize, elem, 0))
	}
	compute := attention.Tensors{Hidden: 4, Inter: 5, Q: 2, KV: 2, Scores: 1}
	f32 := attention.Tensors{Hidden: 2, Heads: 1, Scalars: 2, Scores: 1}
	if m.qkNorm {
		compute.Q, compute.KV = 3, 3
		f32.Q, f32.KV, f32.Heads, f32.KVHeads = 1, 1, 2, 1
	}
	layer := compute.Bytes(s, elem) + f32.Bytes(s, 4) + attention.Tensors{Scores: 1}.Bytes(s, 1)
	head := attention.Tensors{Hidden: 2}.Bytes(s, elem) + attention.Tensors{Hidden: 1}.Bytes(s, 4) + logits
	return int64(c.NumHiddenLayers+1)*layer + head // the layer being differentiated works beside them
}
