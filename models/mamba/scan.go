package mamba

// The selective scan s_t = a_t * s_{t-1} + b_t (elementwise over the trailing axes) for a whole
// sequence, without unrolling the graph over time steps.
//
// Scan uses the pairwise (odd-even) reduction: combining steps 2k and 2k+1 gives a recurrence of
// the same form over T/2 pairs, (a', b') = (a_odd*a_even, a_odd*b_even + b_odd); solving that one
// recursively gives the states at odd steps, and one multiply-add gives the even steps. Each level
// is a handful of whole-tensor ops on half the previous length, so the work is about 2T (linear in
// the sequence), the graph has O(log T) ops, and gradients are those of Mul/Add/Reshape/Slice.
// Only products of a's (each in [0, 1]) and sums appear: no exp of cumulative sums, so nothing
// can overflow however strong the decay. docs/mamba.md compares it with the alternatives.

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
)

// Scan returns every state s_t, t = 0..T-1, of s_t = a_t*s_{t-1} + b_t, with s_{-1} = h0 (zeros
// if h0 is nil). a and b are [B, T, ...], h0 is [B, ...]; the result has b's shape.
func Scan(a, b, h0 *Node) *Node {
	dims := b.Shape().Dimensions
	B, T := dims[0], dims[1]
	F := b.Shape().Size() / (B * T)
	a, b = Reshape(a, B, T, F), Reshape(b, B, T, F)
	if h0 != nil {
		first := Add(SliceAxis(b, 1, AxisRange(0, 1)), Mul(SliceAxis(a, 1, AxisRange(0, 1)), Reshape(h0, B, 1, F)))
		if T == 1 {
			b = first
		} else {
			b = Concatenate([]*Node{first, SliceAxis(b, 1, AxisRange(1, T))}, 1)
		}
	}
	return Reshape(pairwiseScan(a, b), dims...)
}

// pairwiseScan solves the recurrence from zero state on [B, T, F].
func pairwiseScan(a, b *Node) *Node {
	dims := b.Shape().Dimensions
	B, T, F := dims[0], dims[1], dims[2]
	if T == 1 {
		return b
	}
	if T%2 == 1 {
		// Pad with an identity step (a=1, b=0) and drop its state.
		a = Concatenate([]*Node{a, Ones(a.Graph(), shapes.Make(a.DType(), B, 1, F))}, 1)
		b = Concatenate([]*Node{b, Zeros(b.Graph(), shapes.Make(b.DType(), B, 1, F))}, 1)
		return SliceAxis(pairwiseScan(a, b), 1, AxisRange(0, T))
	}
	half := T / 2
	pairs := func(x *Node) (even, odd *Node) {
		return steps(x, 0, 2, half), steps(x, 1, 2, half)
	}
	aEven, aOdd := pairs(a)
	bEven, bOdd := pairs(b)
	odd := pairwiseScan(Mul(aOdd, aEven), Add(Mul(aOdd, bEven), bOdd)) // states at steps 2k+1
	var even *Node
	if half == 1 {
		even = bEven
	} else {
		prev := Concatenate([]*Node{Zeros(b.Graph(), shapes.Make(b.DType(), B, 1, F)), steps(odd, 0, 1, half-1)}, 1)
		even = Add(Mul(aEven, prev), bEven) // states at steps 2k
	}
	return Reshape(Stack([]*Node{even, odd}, 2), B, T, F)
}

// steps returns x[:, start + i*stride, :] for i < count, of x [B, L, F], as a Gather of whole
// rows: the Go backend copies each gathered row with one copy, while a strided Slice copies
// element by element (several times slower on these tensors).
func steps(x *Node, start, stride, count int) *Node {
	dims := x.Shape().Dimensions
	B, L, F := dims[0], dims[1], dims[2]
	if start == 0 && count == L && (stride == 1 || count == 1) {
		return x // every row: a Gather would only copy them
	}
	idx := make([]int32, 0, B*count)
	for b := range B {
		for i := range count {
			idx = append(idx, int32(b*L+start+i*stride))
		}
	}
	rows := Gather(Reshape(x, B*L, F), ConstTensor(x.Graph(), tensors.FromFlatDataAndDimensions(idx, B*count, 1)))
	return Reshape(rows, B, count, F)
}

// SequentialScan is the same recurrence unrolled one time step at a time, as Hugging Face's slow
// path loops. Its graph grows with T; it is the reference the tests and benchmarks compare Scan
// against, not something to run on long sequences.
func SequentialScan(a, b, h0 *Node) *Node {
	dims := b.Shape().Dimensions
	B, T := dims[0], dims[1]
	F := b.Shape().Size() / (B * T)
	a, b = Reshape(a, B, T, F), Reshape(b, B, T, F)
	var s *Node
	if h0 != nil {
		s = Reshape(h0, B, 1, F)
	}
	states := make([]*Node, T)
	for t := range T {
		bt := SliceAxis(b, 1, AxisRange(t, t+1))
		if s == nil {
			s = bt
		} else {
			s = Add(Mul(SliceAxis(a, 1, AxisRange(t, t+1)), s), bt)
		}
		states[t] = s
	}
	return Reshape(Concatenate(states, 1), dims...)
}

// outer returns u[b,t,d] * v[b,t,n] as [B, T, D, N], a batched matmul over a unit axis: the Go
// backend's broadcasting multiply iterates element by element, its matmul is vectorised.
func outer(u, v *Node) *Node {
	return DotGeneral(ExpandAxes(u, -1), []int{3}, []int{0, 1}, ExpandAxes(v, 2), []int{2}, []int{0, 1})
}

// decay returns exp(dt[b,t,d] * A[d,n]) as [B, T, D, N]: dt is spread over the state axis by an
// outer product with ones, then multiplied by A as a leading broadcast (both vectorised; the
// direct broadcast of [B,T,D,1] by [D,N] is a per-element iterator, 4x slower).
func decay(dt, A *Node) *Node {
	dims := dt.Shape().Dimensions
	N := A.Shape().Dimensions[1]
	ones := Ones(dt.Graph(), shapes.Make(dt.DType(), dims[0], dims[1], N))
	return Exp(Mul(outer(dt, ones), ExpandLeftToRank(A, 4)))
}

// contract returns sum_n s[b,t,d,n] c[b,t,n] as [B, T, D].
func contract(s, c *Node) *Node {
	return DotGeneral(s, []int{3}, []int{0, 1}, c, []int{2}, []int{0, 1})
}

// scanRadix is the block length of ScanOutput's first level.
const scanRadix = 8

// ScanOutput returns y[b,t,d] = sum_n C[b,t,n] s[b,t,d,n] for the selective scan from zero state
// s_t = exp(dt_t A) * s_{t-1} + dtx_t B_t (dt, dtx [B, T, D] and Bm [B, T, N] float32, A [D, N],
// Cm [B, T, N] in dtype; the states are cast to dtype before the contraction, as Hugging Face).
//
// It is Scan followed by the contraction, restructured to make fewer passes over [B, T, D, N]
// memory: time is cut into blocks of R = scanRadix steps and every tensor of phase j (steps
// Rk+j) is built directly from rows of the small inputs, so nothing of full size is gathered.
// Each block is summarised sequentially (B' = a_j B' + b_j; its decay exp(sum_j dt_j A) comes from
// the small dt), the block-end states come from the pairwise Scan on T/R steps, and the states
// inside the blocks are rebuilt sequentially from the previous block's end and contracted with C
// phase by phase, so no full-length state tensor is ever interleaved: only y is.
func ScanOutput(dt, dtx, Bm, Cm, A *Node) *Node {
	y, _ := scanOutput(dt, dtx, Bm, Cm, A, nil, false)
	return y
}

// ScanOutputFrom is ScanOutput continuing from the state h0 [B, D, N] float32 (s_{-1}; zeros if
// nil), as decoding from a cache does; it also returns the state after the last step, s_{T-1}
// [B, D, N] float32. h0 enters as the state before the first block: it is added into the first
// block's summary (s_{R-1} = aSum_0 h0 + bSum_0) and starts the first block's rebuilt states.
func ScanOutputFrom(dt, dtx, Bm, Cm, A, h0 *Node) (y, last *Node) {
	return scanOutput(dt, dtx, Bm, Cm, A, h0, true)
}

// scanOutput is ScanOutput and ScanOutputFrom; with h0 nil and wantLast false it builds exactly
// ScanOutput's graph.
func scanOutput(dt, dtx, Bm, Cm, A, h0 *Node, wantLast bool) (y, last *Node) {
	g := dt.Graph()
	dims := dt.Shape().Dimensions
	B, T, D := dims[0], dims[1], dims[2]
	N := A.Shape().Dimensions[1]
	dtype := Cm.DType()
	R := min(scanRadix, T)
	if T%R != 0 {
		// Identity steps (dt = 0 so a = 1, no input, C = 0) pad to whole blocks; their outputs
		// are dropped and, being last, they cannot affect earlier steps. They leave the state
		// unchanged (exp(0) = 1 and b = 0 exactly), so the last block's end is s_{T-1}.
		padded := (T + R - 1) / R * R
		pad := func(x *Node) *Node {
			d := x.Shape().Dimensions
			return Concatenate([]*Node{x, Zeros(g, shapes.Make(x.DType(), d[0], padded-T, d[2]))}, 1)
		}
		y, last = scanOutput(pad(dt), pad(dtx), pad(Bm), pad(Cm), A, h0, wantLast)
		return SliceAxis(y, 1, AxisRange(0, T)), last
	}
	nb := T / R
	phase := func(x *Node, j int) *Node { return steps(x, j, R, nb) }
	flat := func(x *Node) *Node { return Reshape(x, B, nb, D*N) }
	// A repeated for every (batch, block): the decays are then exp(A * dt) with dt broadcast
	// along the trailing state axis, a vectorised multiply (cheaper than decay's outer product).
	aRows := Reshape(A, 1, 1, D, N) // one (batch, block): A itself
	if B*nb > 1 {
		zeros := make([]int32, B*nb)
		aRows = Gather(Reshape(A, 1, D*N), ConstTensor(g, tensors.FromFlatDataAndDimensions(zeros, B*nb, 1)))
		aRows = Reshape(aRows, B, nb, D, N)
	}
	blockDecay := func(dt *Node) *Node { return flat(Exp(Mul(aRows, ExpandAxes(dt, -1)))) }
	a, b := make([]*Node, R), make([]*Node, R)
	var dtSum *Node
	for j := range R {
		dtj := phase(dt, j)
		a[j] = blockDecay(dtj)
		b[j] = flat(outer(phase(dtx, j), phase(Bm, j)))
		if dtSum == nil {
			dtSum = dtj
		} else {
			dtSum = Add(dtSum, dtj)
		}
	}
	// Block summaries: s_{Rk+R-1} = aSum_k s_{Rk-1} + bSum_k.
	bSum := b[0]
	for j := 1; j < R; j++ {
		bSum = Add(Mul(a[j], bSum), b[j])
	}
	var aSum *Node
	if R == 1 && h0 != nil {
		aSum = a[0] // the same values (dtSum is dt): one exp fewer per decoded token
	} else {
		aSum = blockDecay(dtSum)
	}
	var init *Node // h0 as [B, 1, D*N]
	if h0 != nil {
		init = Reshape(h0, B, 1, D*N)
		first := Add(Mul(steps(aSum, 0, 1, 1), init), steps(bSum, 0, 1, 1))
		if nb == 1 {
			bSum = first
		} else {
			bSum = Concatenate([]*Node{first, steps(bSum, 1, 1, nb-1)}, 1)
		}
	}
	ends := pairwiseScan(aSum, bSum) // states at steps Rk+R-1
	if wantLast {
		last = Reshape(steps(ends, nb-1, 1, 1), B, D, N)
	}
	s := init // state before the block's first step: h0 (nil for zero) for the first block
	if nb > 1 {
		if init == nil {
			init = Zeros(g, shapes.Make(ends.DType(), B, 1, D*N))
		}
		s = Concatenate([]*Node{init, steps(ends, 0, 1, nb-1)}, 1)
	}
	contractPhase := func(s *Node, j int) *Node {
		return contract(ConvertDType(Reshape(s, B, nb, D, N), dtype), phase(Cm, j))
	}
	ys := make([]*Node, R)
	for j := range R - 1 {
		if s == nil {
			s = b[j]
		} else {
			s = Add(Mul(a[j], s), b[j])
		}
		ys[j] = contractPhase(s, j)
	}
	ys[R-1] = contractPhase(ends, R-1)
	if R == 1 {
		return ys[0], last
	}
	return Reshape(Stack(ys, 2), B, T, D), last
}
