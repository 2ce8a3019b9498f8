// Package attention is the causal self-attention the transformer families (models/gemma,
// models/llama) share: the masks of packed scoring and of cached decoding, optionally sliding,
// rotary position embeddings, grouped-query attention and the key/value cache's layout (and, in
// config.go, the checks of the config.json sizes these pieces rely on). Each piece is the same
// mathematics in every family that calls it, written once:
//
//	allowed(q, k) = seg(q) == seg(k) && k <= q [&& pos(q) - pos(k) < window]   (PackedMask)
//	allowed(i, s) = s <= start+i [&& start+i - s < window]                      (StepMask: slot s holds position s)
//	allowed(i, p) = 0 <= p <= start+i && start+i - p < window                   (RingStepMask: a sliding layer's ring, then the chunk)
//	RoPE(x)       = x*cos + rotate_half(x)*sin, rotate_half(x) = [-x2, x1]        (RotaryTables, ApplyRotary)
//	attn          = softmax(cap*tanh(scale q k^T / cap) + mask) v, head h on kv head h/(H/KV)   (GroupedQuery)
//
// What differs between families stays in the family's file, which still reads top to bottom as
// the equations in its header: the norms (Gemma's float32 (1 + w) against Llama's w after the
// cast back), the projections and their biases, the MLP, the embedding scale, the head, where the
// norms sit in the block, and how the RoPE frequencies are derived from config.json.
//
// Layouts: queries, keys and values of a chunk are [B, T, heads, head_dim] as the projections
// give them; a layer's cache holds keys (after RoPE) and values [1, kv_heads, max_length,
// head_dim], slot s holding position s (a sliding layer's, with SlidingCacheShapes, is a ring
// of window slots, slot p mod window holding position p); a mask is boolean, broadcastable to
// [B, kv_heads, group, T, S], true where a query may see a key.
package attention

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.

	"github.com/perpetual-ml/perpetual/models/internal/customgrad"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// PackedMask is the mask of a full-sequence (Logits) graph over a packed batch: positions and
// segments are int32 [B, T]; query q sees key k when both are in the same segment and k is not
// after q; with window > 0 (a sliding layer) also only when positions[q] - positions[k] < window,
// by the tokens' own positions, so a packed item's window restarts with it. It returns
// [B, 1, 1, T, T]. Every token sees at least itself, so no softmax row is empty (padding rows see
// earlier padding: finite garbage, never read).
func PackedMask(positions, segments *Node, window int) *Node {
	g := segments.Graph()
	T := segments.Shape().Dimensions[1]
	same := Equal(ExpandAxes(segments, -1), ExpandAxes(segments, 1))
	causal := GreaterOrEqual(Iota(g, shapes.Make(dtypes.Int32, 1, T, T), 1), Iota(g, shapes.Make(dtypes.Int32, 1, T, T), 2))
	allowed := LogicalAnd(same, BroadcastToDims(causal, same.Shape().Dimensions...))
	if window > 0 {
		pos := ConvertDType(positions, dtypes.Int32)
		near := LessThan(Sub(ExpandAxes(pos, -1), ExpandAxes(pos, 1)), Scalar(g, dtypes.Int32, window))
		allowed = LogicalAnd(allowed, near)
	}
	return ExpandAxes(allowed, 1, 2) // broadcast over kv heads and the group
}

// StepPositions are the positions [1, S] of a decoding chunk of S tokens written at start
// (a scalar): start, start+1, ...
func StepPositions(start *Node, S int) *Node {
	return Add(Iota(start.Graph(), shapes.Make(dtypes.Int32, 1, S), 1), ConvertDType(start, dtypes.Int32))
}

// StepMask is the mask of a decoding chunk of S tokens written at start over a cache of
// cacheLen slots, slot s holding position s: query i (at position start+i) sees slot s when
// s <= start+i, and with window > 0 (a sliding layer) also start+i - s < window. It returns
// [1, 1, 1, S, cacheLen]. Slots after the chunk are never seen, so what they hold does not matter.
func StepMask(start *Node, S, cacheLen, window int) *Node {
	g := start.Graph()
	qPos := Add(Iota(g, shapes.Make(dtypes.Int32, S, cacheLen), 0), ConvertDType(start, dtypes.Int32))
	kPos := Iota(g, shapes.Make(dtypes.Int32, S, cacheLen), 1)
	allowed := GreaterOrEqual(qPos, kPos)
	if window > 0 {
		allowed = LogicalAnd(allowed, LessThan(Sub(qPos, kPos), Scalar(g, dtypes.Int32, window)))
	}
	return Reshape(allowed, 1, 1, 1, S, cacheLen)
}

// CacheShapes is the decoding cache of a transformer of the given number of layers: per layer,
// keys then values (keys after RoPE), each [1, kvHeads, maxLength, headDim], named
// "layers.L.k" and "layers.L.v". Every layer keeps every position (SlidingCacheShapes sizes
// sliding layers' caches by their window).
func CacheShapes(layers, kvHeads, headDim, maxLength int, dtype dtypes.DType) []lm.CacheShape {
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

// SlidingCacheShapes is CacheShapes for a transformer whose sliding layers (sliding[l]) only
// ever see the last window positions: their keys and values are rings of min(window,
// maxLength) slots (RingWriter, RingStepMask), the other layers' maxLength slots as in
// CacheShapes. On Gemma 3 (5 of 6 layers sliding, window 512 or 1024) this is most of the
// cache at long lengths.
func SlidingCacheShapes(sliding []bool, window, kvHeads, headDim, maxLength int, dtype dtypes.DType) []lm.CacheShape {
	out := CacheShapes(len(sliding), kvHeads, headDim, maxLength, dtype)
	for l, s := range sliding {
		if s {
			out[2*l].Dimensions[2] = min(window, maxLength)
			out[2*l+1].Dimensions[2] = min(window, maxLength)
		}
	}
	return out
}

// ringPositions is, for a ring of W slots after the positions < end were written in order
// (position p in slot p mod W), the position each slot holds, int32 [W]: end - W + ((s - end)
// mod W). A negative position is a slot never written.
func ringPositions(end *Node, W int) *Node {
	g := end.Graph()
	w := Scalar(g, dtypes.Int32, W)
	d := Sub(Iota(g, shapes.Make(dtypes.Int32, W), 0), end)
	d = Rem(Add(Rem(d, w), w), w) // Rem keeps the dividend's sign: bring it into [0, W)
	return Add(Sub(end, w), d)
}

// RingStepMask is the mask of a decoding chunk of S tokens written at start on a sliding layer
// whose cache is a ring of W slots (RingWriter): the keys are the ring as it was before the
// chunk (slot s holding the latest position < start that is s mod W) followed by the chunk's own
// S keys. Query i (at position start+i) sees a key at position p when 0 <= p <= start+i and
// start+i - p < window. It returns [1, 1, 1, S, W+S].
func RingStepMask(start *Node, S, W, window int) *Node {
	g := start.Graph()
	start = ConvertDType(start, dtypes.Int32)
	kPos := Concatenate([]*Node{ringPositions(start, W), Reshape(StepPositions(start, S), S)}, 0) // [W+S]
	qPos := StepPositions(start, S)                                                               // [1, S]
	kPos, qPos = BroadcastToDims(Reshape(kPos, 1, W+S), S, W+S), BroadcastToDims(Reshape(qPos, S, 1), S, W+S)
	allowed := LogicalAnd(GreaterOrEqual(kPos, ScalarZero(g, dtypes.Int32)), GreaterOrEqual(qPos, kPos))
	allowed = LogicalAnd(allowed, LessThan(Sub(qPos, kPos), Scalar(g, dtypes.Int32, window)))
	return Reshape(allowed, 1, 1, 1, S, W+S)
}

// RingWriter is the KV of sliding layer l in a decoding step over a ring cache of W slots (laid
// out as SlidingCacheShapes): the chunk attends over the ring as it was, then its own keys and
// values (RingStepMask's order), so a chunk longer than the ring still sees its own earlier
// tokens; then each slot takes the chunk's latest position that is its own mod W, if any, and
// newCache[2l], newCache[2l+1] hold the updated ring. Unlike CacheWriter, start+S may exceed
// the ring's length.
func RingWriter(cache, newCache []*Node, l int, start *Node) KV {
	return func(k, v *Node) (*Node, *Node) {
		S, W := k.Shape().Dimensions[2], cache[2*l].Shape().Dimensions[2]
		start := ConvertDType(start, dtypes.Int32)
		// Slot s's position after the chunk; it comes from the chunk when >= start.
		after := ringPositions(Add(start, Scalar(start.Graph(), dtypes.Int32, S)), W)
		fromChunk := GreaterOrEqual(after, start)
		index := Reshape(Clip(Sub(after, start), ScalarZero(start.Graph(), dtypes.Int32), Scalar(start.Graph(), dtypes.Int32, S-1)), W, 1)
		write := func(ring, x *Node) *Node {
			picked := Gather(TransposeAllAxes(x, 2, 0, 1, 3), index)                  // [W, 1, KV, D]
			picked = ConvertDType(TransposeAllAxes(picked, 1, 2, 0, 3), ring.DType()) // [1, KV, W, D]
			mask := BroadcastToDims(Reshape(fromChunk, 1, 1, W, 1), ring.Shape().Dimensions...)
			return Where(mask, picked, ring)
		}
		keys := Concatenate([]*Node{ConvertDType(cache[2*l], k.DType()), k}, 2)
		values := Concatenate([]*Node{ConvertDType(cache[2*l+1], v.DType()), v}, 2)
		newCache[2*l], newCache[2*l+1] = write(cache[2*l], k), write(cache[2*l+1], v)
		return keys, values
	}
}

// KV receives a layer's keys and values of the current chunk, [B, KV, T, D], and returns the
// keys and values the chunk attends over, [B, KV, S, D]: the same (Uncached) or the whole cache
// once the chunk is written into it (CacheWriter).
type KV func(k, v *Node) (keys, values *Node)

// Uncached is the KV of a full-sequence graph: the chunk attends over its own keys and values.
func Uncached(k, v *Node) (keys, values *Node) { return k, v }

// CacheWriter is the KV of layer l in a decoding step over cache (laid out as CacheShapes):
// it writes the chunk's keys and values into the layer's cache at slot start, stores the
// updated tensors in newCache[2l] and newCache[2l+1], and returns them (in the chunk's dtype)
// to attend over. The caller must keep start+T <= the cache length (DynamicUpdateSlice would
// clamp otherwise).
func CacheWriter(cache, newCache []*Node, l int, start *Node) KV {
	return func(k, v *Node) (*Node, *Node) {
		zero := ScalarZero(start.Graph(), dtypes.Int32)
		at := []*Node{zero, zero, ConvertDType(start, dtypes.Int32), zero}
		newCache[2*l] = DynamicUpdateSlice(cache[2*l], ConvertDType(k, cache[2*l].DType()), at)
		newCache[2*l+1] = DynamicUpdateSlice(cache[2*l+1], ConvertDType(v, cache[2*l+1].DType()), at)
		return ConvertDType(newCache[2*l], k.DType()), ConvertDType(newCache[2*l+1], v.DType())
	}
}

// InvFreq is RoPE's inverse frequencies theta^(-2i/headDim), i < headDim/2, in float64 on the
// host (families scale them as their rope_scaling says before RotaryTables).
func InvFreq(theta float64, headDim int) []float64 {
	inv := make([]float64, headDim/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(headDim))
	}
	return inv
}

// RotaryTables returns cos and sin [B, T, 1, head_dim] for positions [B, T] and the inverse
// frequencies computed on the host (cast to float32), in dtype.
func RotaryTables(positions *Node, invFreq []float64, dtype dtypes.DType) (cos, sin *Node) {
	inv := make([]float32, len(invFreq))
	for i, f := range invFreq {
		inv[i] = float32(f)
	}
	return RotaryTablesFrom(positions, Const(positions.Graph(), inv), dtype)
}

// RotaryTablesFrom is RotaryTables for inverse frequencies given as a float32 node [head_dim/2]
// (Gemma v1 computes them in the graph): the angles position x inv_freq are computed in float32,
// repeated for both halves of the head (rotate_half's convention) and cast to dtype after cos and
// sin, as Hugging Face does. The tables broadcast over heads.
func RotaryTablesFrom(positions, invFreq *Node, dtype dtypes.DType) (cos, sin *Node) {
	half := invFreq.Shape().Dimensions[0]
	angles := Mul(ExpandAxes(ConvertDType(positions, dtypes.Float32), -1), Reshape(invFreq, 1, 1, half)) // [B, T, half]
	angles = Concatenate([]*Node{angles, angles}, -1)
	angles = ExpandAxes(angles, 2) // broadcast over heads
	return ConvertDType(Cos(angles), dtype), ConvertDType(Sin(angles), dtype)
}

// ApplyRotary is RoPE on x [B, T, heads, head_dim]: x*cos + rotate_half(x)*sin with
// rotate_half(x) = [-x2, x1] on the head axis.
func ApplyRotary(x, cos, sin *Node) *Node {
	d := x.Shape().Dimensions[x.Rank()-1]
	x1 := SliceAxis(x, -1, AxisRange(0, d/2))
	x2 := SliceAxis(x, -1, AxisRange(d/2, d))
	rotated := Concatenate([]*Node{Neg(x2), x1}, -1)
	return Add(Mul(x, cos), Mul(rotated, sin))
}

// SoftCap is limit * tanh(x / limit) (Gemma 2's soft-capping of attention scores and of the
// final logits), in x's dtype.
func SoftCap(x *Node, limit float64) *Node {
	return MulScalar(Tanh(DivScalar(x, limit)), limit)
}

// GroupedQuery is grouped-query (multi-head when KV = H, multi-query when KV = 1) attention of
// a chunk: q [B, T, H, D] and k, v [B, T, KV, D] (RoPE already applied), handed to kv for the
// keys and values to attend over; allowed is a mask broadcastable to [B, KV, H/KV, T, S]. Scores
// are q k^T * scale, soft-capped when softCap > 0 (both in the compute dtype, as Hugging Face),
// then masked with -1e30 and normalised in float32; the weights are cast back before multiplying
// the values. Query head h uses kv head h/(H/KV) (Hugging Face's repeat_kv). It returns
// [B, T, H*D], the input of o_proj.
func GroupedQuery(q, k, v *Node, kv KV, allowed *Node, scale, softCap float64) *Node {
	return groupedQuery(q, k, v, kv, allowed, scale, softCap, false)
}

// GroupedQueryTraining is GroupedQuery (uncached) for graphs that take gradients: the keys' and
// values' gradients are written by hand (customgrad.Operand). GoMLX's contract the G*T query
// rows, a leading axis of both operands, which the Go backend's DotGeneral runs by transposing
// both [.., G*T, S] and [.., G*T, D] operands element by element; these transpose only the
// narrow [.., G*T, D] operand and the [.., D, S] product.
func GroupedQueryTraining(q, k, v *Node, allowed *Node, scale, softCap float64) *Node {
	return groupedQuery(q, k, v, Uncached, allowed, scale, softCap, true)
}

func groupedQuery(q, k, v *Node, kv KV, allowed *Node, scale, softCap float64, custom bool) *Node {
	keys, values := kv(TransposeAllAxes(k, 0, 2, 1, 3), TransposeAllAxes(v, 0, 2, 1, 3)) // [B, KV, S, D]
	B, T, H, D := q.Shape().Dimensions[0], q.Shape().Dimensions[1], q.Shape().Dimensions[2], q.Shape().Dimensions[3]
	KV, S := keys.Shape().Dimensions[1], keys.Shape().Dimensions[2]
	G := H / KV
	// Heads h = kv*G + g share kv head kv, so group q by kv head.
	// [B, T, H, D] -> [B, H, T, D] is [B, KV, G, T, D] in memory: a [0, 2, 1, 3] transpose, which
	// the Go backend runs as parallel row copies (a rank-5 permutation goes element by element,
	// on one core, and so does its gradient's).
	q = Reshape(TransposeAllAxes(q, 0, 2, 1, 3), B, KV, G*T, D)

	scoresOf := func(keys *Node) *Node {
		return DotGeneral(q, []int{3}, []int{0, 1}, keys, []int{3}, []int{0, 1}) // [B, KV, G*T, S]
	}
	var scores *Node
	if custom { // dK[s, d] = sum_i dScores[i, s] q[i, d]
		scores = customgrad.Operand(keys, scoresOf, func(dScores *Node) *Node {
			return customgrad.SwapLast(DotGeneral(customgrad.SwapLast(q), []int{3}, []int{0, 1}, dScores, []int{2}, []int{0, 1}))
		})
	} else {
		scores = scoresOf(keys)
	}
	scores = MulScalar(scores, scale)
	if softCap > 0 {
		scores = SoftCap(scores, softCap)
	}
	scores = Reshape(ConvertDType(scores, dtypes.Float32), B, KV, G, T, S)
	mask := BroadcastToDims(allowed, B, KV, G, T, S)
	scores = Where(mask, scores, BroadcastToDims(Scalar(q.Graph(), dtypes.Float32, -1e30), B, KV, G, T, S))
	probs := ConvertDType(Softmax(scores, -1), q.DType())
	probs = Reshape(probs, B, KV, G*T, S)
	attnOf := func(values *Node) *Node {
		return DotGeneral(probs, []int{3}, []int{0, 1}, values, []int{2}, []int{0, 1}) // [B, KV, G*T, D]
	}
	var attn *Node
	if custom { // dV[s, d] = sum_i probs[i, s] dAttn[i, d]
		attn = customgrad.Operand(values, attnOf, func(dAttn *Node) *Node {
			return customgrad.SwapLast(DotGeneral(customgrad.SwapLast(dAttn), []int{3}, []int{0, 1}, probs, []int{2}, []int{0, 1}))
		})
	} else {
		attn = attnOf(values)
	}
	attn = TransposeAllAxes(Reshape(attn, B, H, T, D), 0, 2, 1, 3) // [B, T, H, D], h = kv*G + g
	return Reshape(attn, B, T, H*D)
}
