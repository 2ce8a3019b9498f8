package gemma

// The graph pieces Gemma v1 (gemma.go) and Gemma 2/3 (gemma2.go) share: scaled embeddings,
// RMSNorm with (1 + w), rotary embeddings, grouped-query attention with an optional soft cap,
// the tied head and the decoding cache layout.

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.

	"github.com/perpetual-ml/perpetual/models/lm"
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

// softcap is cap * tanh(x / cap) (Gemma 2's logit soft-capping), in x's dtype.
func softcap(x *Node, limit float64) *Node {
	return MulScalar(Tanh(DivScalar(x, limit)), limit)
}

// geluTanh is GELU with the tanh approximation (PyTorch's gelu(approximate="tanh")):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
func geluTanh(x *Node) *Node {
	inner := MulScalar(Add(x, MulScalar(Mul(Square(x), x), 0.044715)), math.Sqrt(2/math.Pi))
	return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
}

// rotaryFromInvFreq returns cos and sin [B, T, 1, head_dim] for the positions, in dtype: angles
// are position x inv_freq in float32 (inv_freq computed on the host), cast to the hidden dtype,
// as Hugging Face does.
func rotaryFromInvFreq(positions *Node, invFreq []float64, dtype dtypes.DType) (cos, sin *Node) {
	g := positions.Graph()
	half := len(invFreq)
	inv := make([]float32, half)
	for i, f := range invFreq {
		inv[i] = float32(f)
	}
	angles := Mul(ExpandAxes(ConvertDType(positions, dtypes.Float32), -1), Reshape(Const(g, inv), 1, 1, half)) // [B, T, half]
	angles = Concatenate([]*Node{angles, angles}, -1)
	angles = ExpandAxes(angles, 2) // broadcast over heads
	return ConvertDType(Cos(angles), dtype), ConvertDType(Sin(angles), dtype)
}

// applyRotary is x*cos + rotate_half(x)*sin with rotate_half(x) = [-x2, x1] on the head axis.
func applyRotary(x, cos, sin *Node) *Node {
	d := x.Shape().Dimensions[x.Rank()-1]
	x1 := SliceAxis(x, -1, AxisRange(0, d/2))
	x2 := SliceAxis(x, -1, AxisRange(d/2, d))
	rotated := Concatenate([]*Node{Neg(x2), x1}, -1)
	return Add(Mul(x, cos), Mul(rotated, sin))
}

// attention is grouped-query attention of queries q [B, T, H, D] (RoPE applied) over keys and
// values [B, KV, S, D]; allowed is a boolean mask broadcastable to [B, KV, group, T, S]. Scores
// are q k^T * scale, soft-capped when limit > 0 (both in the compute dtype, as Hugging Face),
// then masked and normalised in float32. It returns [B, T, H*D].
func attention(q, keys, values, allowed *Node, scale, limit float64) *Node {
	B, T, H, D := q.Shape().Dimensions[0], q.Shape().Dimensions[1], q.Shape().Dimensions[2], q.Shape().Dimensions[3]
	KV, S := keys.Shape().Dimensions[1], keys.Shape().Dimensions[2]
	G := H / KV
	// Heads h = kv*G + g share kv head kv (Hugging Face's repeat_kv), so group q by kv head.
	q = TransposeAllAxes(Reshape(q, B, T, KV, G, D), 0, 2, 3, 1, 4) // [B, KV, G, T, D]
	q = Reshape(q, B, KV, G*T, D)

	scores := DotGeneral(q, []int{3}, []int{0, 1}, keys, []int{3}, []int{0, 1}) // [B, KV, G*T, S]
	scores = MulScalar(scores, scale)
	if limit > 0 {
		scores = softcap(scores, limit)
	}
	// Softmax in float32 as Hugging Face does, masked with a large negative value.
	scores = Reshape(ConvertDType(scores, dtypes.Float32), B, KV, G, T, S)
	mask := BroadcastToDims(allowed, B, KV, G, T, S)
	scores = Where(mask, scores, BroadcastToDims(Scalar(q.Graph(), dtypes.Float32, -1e30), B, KV, G, T, S))
	probs := ConvertDType(Softmax(scores, -1), q.DType())
	probs = Reshape(probs, B, KV, G*T, S)
	attn := DotGeneral(probs, []int{3}, []int{0, 1}, values, []int{2}, []int{0, 1}) // [B, KV, G*T, D]
	attn = TransposeAllAxes(Reshape(attn, B, KV, G, T, D), 0, 3, 1, 2, 4)           // [B, T, KV, G, D]
	return Reshape(attn, B, T, H*D)
}

// tiedHead is the output projection by the embedding table; logits are soft-capped when
// limit > 0 (in the compute dtype, as Hugging Face), then float32.
func tiedHead(x, embed *Node, limit float64) *Node {
	logits := DotGeneral(x, []int{2}, nil, embed, []int{1}, nil)
	if limit > 0 {
		logits = softcap(logits, limit)
	}
	return ConvertDType(logits, dtypes.Float32)
}

// kvCacheShapes is the decoding cache of every Gemma: per layer, keys then values (after RoPE),
// each [1, kvHeads, maxLength, headDim].
func kvCacheShapes(layers, kvHeads, headDim, maxLength int, dtype dtypes.DType) []lm.CacheShape {
	var out []lm.CacheShape
	for l := range layers {
		for _, kind := range []string{"k", "v"} {
			out = append(out, lm.CacheShape{
				Name:       fmt.Sprintf("layers.%d.%s", l, kind),
				DType:      dtype,
				Dimensions: []int{1, kvHeads, maxLength, headDim},
			})
		}
	}
	return out
}

// cacheWriter returns the kv function of a decoding step for layer l: it writes the chunk's keys
// and values into the cache at start and returns the whole cache to attend over.
func cacheWriter(cache, newCache []*Node, l int, start *Node) func(k, v *Node) (*Node, *Node) {
	return func(k, v *Node) (*Node, *Node) {
		zero := ScalarZero(start.Graph(), dtypes.Int32)
		at := []*Node{zero, zero, start, zero}
		newCache[2*l] = DynamicUpdateSlice(cache[2*l], ConvertDType(k, cache[2*l].DType()), at)
		newCache[2*l+1] = DynamicUpdateSlice(cache[2*l+1], ConvertDType(v, cache[2*l+1].DType()), at)
		return ConvertDType(newCache[2*l], k.DType()), ConvertDType(newCache[2*l+1], v.DType())
	}
}
