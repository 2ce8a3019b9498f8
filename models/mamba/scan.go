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
	idx := make([][]int32, 0, B*count)
	for b := range B {
		for i := range count {
			idx = append(idx, []int32{int32(b*L + start + i*stride)})
		}
	}
	rows := Gather(Reshape(x, B*L, F), Const(x.Graph(), idx))
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
