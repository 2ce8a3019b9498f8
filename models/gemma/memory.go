package gemma

import (
	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/internal/attention"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// The memory models of Model and Model2 (lm.MemoryModel), counted on their graphs: the tensors
// alive at the peak, replayed with lmtest.GraphPeak (TestMemoryModelMatchesGraph keeps the
// counts honest), by size and dtype. docs/runtime.md compares the estimate with the measured
// peak on the Go backend.

var (
	_ lm.MemoryModel = (*Model)(nil)
	_ lm.MemoryModel = (*Model2)(nil)
)

// ActivationBytes implements lm.MemoryModel. Training keeps, per layer and token, in the
// compute dtype 2 hidden-size vectors (the normed inputs of attention and MLP), 8
// intermediate-size ones (gate, up, their product and the tanh GELU's terms), 2 query-sized and
// 2 key-sized ones (rotated, grouped), and in float32 4 hidden-size vectors and 2 numbers (the
// RMSNorms' inputs, outputs and statistics) and one number per head; per layer and row, one
// score-sized tensor in the compute dtype, one in float32 and the boolean mask broadcast to
// them. The layer being differentiated works beside them: one more layer. The head keeps the
// final norm's input and output and the float32 logits. Scoring is the larger of a block's
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
	layer := attention.Tensors{Hidden: 2, Inter: 8, Q: 2, KV: 2, Scores: 1}.Bytes(s, elem) +
		attention.Tensors{Hidden: 4, Heads: 1, Scalars: 2, Scores: 1}.Bytes(s, 4) +
		attention.Tensors{Scores: 1}.Bytes(s, 1)
	head := attention.Tensors{Hidden: 2}.Bytes(s, elem) + attention.Tensors{Hidden: 2}.Bytes(s, 4) + logits
	return int64(c.NumHiddenLayers+1)*layer + head // the layer being differentiated works beside them
}

// ActivationBytes implements lm.MemoryModel. Per layer, Model2 keeps what Model does (Gemma v1
// above) with 4 more float32 hidden-size vectors and 2 more numbers for the sandwich norms,
// one more score-sized tensor in the compute dtype for the attention soft cap, and for Gemma 3's
// q/k norms 2 query-sized and 2 key-sized float32 vectors with their statistics. Sliding
// layers compute every score and mask them, so they count as global ones. The final soft cap
// adds 2 logits-sized tensors in the compute dtype to the head.
func (m *Model2) ActivationBytes(batch, T int, dtype dtypes.DType, training bool) int64 {
	c := m.cfg
	s := attention.ActivationShape{Batch: batch, T: T, Hidden: c.HiddenSize, Inter: c.IntermediateSize,
		Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim}
	elem := int(dtype.Size())
	logits := attention.LogitsBytes(s, c.VocabSize)
	var capScores, capLogits float64 // the soft caps' tanh and its input (scoring)
	if m.attnCap > 0 {
		capScores = 2
	}
	if m.finalCap > 0 {
		capLogits = 2
	}
	if !training {
		return max(attention.ScoringBytes(s, elem, capScores), attention.HeadScoringBytes(s, c.VocabSize, elem, capLogits))
	}
	compute := attention.Tensors{Hidden: 2, Inter: 8, Q: 2, KV: 2, Scores: 1}
	f32 := attention.Tensors{Hidden: 8, Heads: 1, Scalars: 4, Scores: 1}
	compute.Scores += capScores / 2
	if m.qkNorm {
		f32.Q, f32.KV, f32.Heads, f32.KVHeads = 2, 2, 2, 1
	}
	layer := compute.Bytes(s, elem) + f32.Bytes(s, 4) + attention.Tensors{Scores: 1}.Bytes(s, 1)
	head := attention.Tensors{Hidden: 2}.Bytes(s, elem) + attention.Tensors{Hidden: 2}.Bytes(s, 4) + logits +
		int64(capLogits*float64(logits/4)*float64(elem))
	return int64(c.NumHiddenLayers+1)*layer + head // the layer being differentiated works beside them
}
