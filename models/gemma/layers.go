package gemma

// The graph pieces Gemma v1 (gemma.go) and Gemma 2/3 (gemma2.go) share and Llama does not:
// scaled embeddings, RMSNorm with (1 + w), GELU (tanh) and the tied head. Attention, RoPE, the
// masks and the decoding cache are models/internal/attention's, shared with Llama.

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.

	"github.com/perpetual-ml/perpetual/models/internal/attention"
)

// scaledEmbedding looks up token embeddings and scales them by sqrt(hidden); Hugging Face casts
// the normalizer to the hidden dtype first, which matters in bfloat16.
func scaledEmbedding(table, tokens *Node, hidden int) *Node {
	x := Gather(table, ExpandAxes(ConvertDType(tokens, dtypes.Int32), -1))
	normalizer := Scalar(x.Graph(), x.DType(), math.Sqrt(float64(hidden)))
	return Mul(x, normalizer)
}

// rmsNorm is Gemma's RMSNorm over the last axis: computed in float32, weight applied as (1 + w)
// in float32, cast back. It uses 1/Sqrt rather than Rsqrt because GoMLX has no gradient for
// Rsqrt.
func rmsNorm(x, w *Node, eps float64) *Node {
	dtype := x.DType()
	xf := ConvertDType(x, dtypes.Float32)
	meanSq := ReduceAndKeep(Square(xf), ReduceMean, -1)
	normed := Div(xf, Sqrt(Add(meanSq, Scalar(x.Graph(), dtypes.Float32, eps))))
	scale := OnePlus(ConvertDType(w, dtypes.Float32))
	normed = Mul(normed, ExpandLeftToRank(scale, normed.Rank()))
	return ConvertDType(normed, dtype)
}

// linear is x W^T for a PyTorch-layout weight [out, in], contracting x's last axis.
func linear(x, w *Node) *Node {
	return DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
}

// geluTanh is GELU with the tanh approximation (PyTorch's gelu(approximate="tanh")):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
func geluTanh(x *Node) *Node {
	inner := MulScalar(Add(x, MulScalar(Mul(Square(x), x), 0.044715)), math.Sqrt(2/math.Pi))
	return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
}

// tiedHead is the output projection by the embedding table; logits are soft-capped when
// limit > 0 (in the compute dtype, as Hugging Face), then float32.
func tiedHead(x, embed *Node, limit float64) *Node {
	logits := DotGeneral(x, []int{2}, nil, embed, []int{1}, nil)
	if limit > 0 {
		logits = attention.SoftCap(logits, limit)
	}
	return ConvertDType(logits, dtypes.Float32)
}
