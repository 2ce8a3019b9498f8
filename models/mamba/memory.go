package mamba

import (
	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/lm"
)

var _ lm.MemoryModel = (*Model)(nil)

// scoringUnits is a layer's forward working set in scan units on the Go backend: the graph
// needs about 0.5 in creation order, but the backend runs the mixer's four channel groups and
// the eight phases of each block at once; measured on two configs, the forward peaks at about 7
// units above the weights (docs/runtime.md, docs/mamba.md).
const scoringUnits = 7

// ActivationBytes implements lm.MemoryModel. The selective scan dominates: its unit is one
// float32 [B, T, d_inner, state] tensor. Counted on the training graph (lmtest.GraphPeak;
// TestMemoryModel keeps the counts honest), a layer keeps for the backward pass about 3.25
// float32 units: ScanOutput's hand-written gradient (scanForward.grad) reuses the phase decays
// (1), the states rebuilt inside the blocks with the block ends (1), the decayed previous states
// a_j s_{j-1} (7/8), the block starts, block decays and repeated A (1/8 each); nothing in the
// compute dtype (the autodiff of the earlier graph kept 4.4 float32 units and one cast state).
// Per token it keeps 23 d_inner-sized vectors in the compute dtype and 4 in float32 (the
// projections, the convolution's taps and run masks, SiLU, dt and its softplus, the per-block
// decays), 2 hidden-size vectors in the compute dtype and one in float32, and 8 state-sized
// float32 rows (B and C by phase); the layer being differentiated works beside them (one more
// layer). The head keeps the final norm's tensors and the float32 logits. Scoring is the larger of a layer's measured working set (scoringUnits) with the
// residual stream, and the head's.
func (m *Model) ActivationBytes(batch, T int, dtype dtypes.DType, training bool) int64 {
	c := m.cfg
	tokens := float64(batch) * float64(T)
	elem := float64(dtype.Size())
	unit := tokens * float64(c.IntermediateSize*c.StateSize) * 4
	logits := tokens * float64(c.VocabSize) * 4
	hidden := tokens * float64(c.HiddenSize)
	if !training {
		head := 2.25*logits + hidden*elem
		if elem != 4 {
			head += logits / 4 * elem
		}
		return int64(max(scoringUnits*unit+hidden*(elem+4), head))
	}
	inner := tokens * float64(c.IntermediateSize)
	layer := 3.25*unit + inner*(23*elem+4*4) + hidden*(2*elem+4) + tokens*float64(8*c.StateSize)*4
	head := logits + hidden*(2*elem+4)
	return int64(float64(c.NumHiddenLayers+1)*layer + head)
}
