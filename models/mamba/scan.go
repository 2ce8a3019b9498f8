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
	"github.com/gomlx/compute/dtypes"
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

// pairwiseScan solves the recurrence from zero state on [B, T, ...] (any trailing axes).
func pairwiseScan(a, b *Node) *Node {
	dims := b.Shape().Dimensions
	B, T := dims[0], dims[1]
	one := func(x *Node, n int) shapes.Shape { // x's shape with n steps
		d := append([]int{B, n}, dims[2:]...)
		return shapes.Make(x.DType(), d...)
	}
	if T == 1 {
		return b
	}
	if T%2 == 1 {
		// Pad with an identity step (a=1, b=0) and drop its state.
		a = Concatenate([]*Node{a, Ones(a.Graph(), one(a, 1))}, 1)
		b = Concatenate([]*Node{b, Zeros(b.Graph(), one(b, 1))}, 1)
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
		prev := Concatenate([]*Node{Zeros(b.Graph(), one(b, 1)), steps(odd, 0, 1, half-1)}, 1)
		even = Add(Mul(aEven, prev), bEven) // states at steps 2k
	}
	return Reshape(Stack([]*Node{even, odd}, 2), dims...)
}

// steps returns x[:, start + i*stride, ...] for i < count, of x [B, L, ...] (x itself when that
// is every row: a Gather would only copy them).
func steps(x *Node, start, stride, count int) *Node {
	if start == 0 && count == x.Shape().Dimensions[1] && (stride == 1 || count == 1) {
		return x
	}
	idx := make([]int, count)
	for i := range idx {
		idx[i] = start + i*stride
	}
	return rows(x, idx)
}

// rows returns x[:, idx[i], ...] for each i, of x [B, L, ...], as a Gather of whole rows over
// the first two axes: the Go backend copies each gathered row with one copy, while a strided
// Slice copies element by element (several times slower on these tensors), and no Reshape of x
// is needed (a Reshape copies its input when the input has other uses, as in training graphs).
func rows(x *Node, idx []int) *Node {
	dims := x.Shape().Dimensions
	B := dims[0]
	flat := make([]int32, 0, 2*B*len(idx))
	for b := range B {
		for _, i := range idx {
			flat = append(flat, int32(b), int32(i))
		}
	}
	got := Gather(x, ConstTensor(x.Graph(), tensors.FromFlatDataAndDimensions(flat, B*len(idx), 2)))
	return Reshape(got, append([]int{B, len(idx)}, dims[2:]...)...)
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
//
// Its gradient is written by hand (scanForward.grad) rather than derived by autodiff through
// these ops: the backward of the recurrence is the same recurrence run backwards, done with the
// same blocks, and every contraction is laid out so that the Go backend needs no transposes.
func ScanOutput(dt, dtx, Bm, Cm, A *Node) *Node {
	g := dt.Graph()
	T := dt.Shape().Dimensions[1]
	R := min(scanRadix, T)
	if T%R != 0 {
		// Identity steps (dt = 0 so a = 1, no input, C = 0) pad to whole blocks; their outputs
		// are dropped and, being last, they cannot affect earlier steps.
		padded := (T + R - 1) / R * R
		pad := func(x *Node) *Node {
			d := x.Shape().Dimensions
			return Concatenate([]*Node{x, Zeros(g, shapes.Make(x.DType(), d[0], padded-T, d[2]))}, 1)
		}
		return SliceAxis(ScanOutput(pad(dt), pad(dtx), pad(Bm), pad(Cm), A), 1, AxisRange(0, T))
	}
	// The gradient is attached without autodiff seeing the forward ops: the forward runs on
	// StopGradient rows of the inputs; y goes out through IdentityWithCustomGradient, whose
	// function receives dy and builds the whole backward (scanForward.grad); each input enters
	// through its own IdentityWithCustomGradient (free: the Go backend hands an unshared buffer
	// through) and reaches y only by a zero-valued term, 0 * (its first element), so autodiff
	// visits it after y and it returns its part of that backward.
	var grads []*Node
	ins := []*Node{dt, dtx, Bm, Cm, A}
	var link *Node
	for i, x := range ins {
		ins[i] = IdentityWithCustomGradient(x, func(_, _ *Node) *Node { return grads[i] })
		one := make([]SliceAxisSpec, x.Rank())
		for a := range one {
			one[a] = AxisRange(0, 1)
		}
		first := ConvertDType(Reshape(Slice(ins[i], one...)), dtypes.Float32)
		if link == nil {
			link = first
		} else {
			link = Add(link, first)
		}
	}
	fwd := scanOutputForward(ins[0], ins[1], ins[2], ins[3], ins[4], R, MulScalar(link, 0))
	return IdentityWithCustomGradient(fwd.y, func(_, dy *Node) *Node {
		grads = fwd.grad(dy)
		for i, x := range ins {
			grads[i] = ConvertDType(grads[i], x.DType())
		}
		return dy
	})
}

// scanForward is ScanOutput's forward graph and what its gradient reuses.
type scanForward struct {
	B, T, D, N, R, nb int
	dt, dtx, Bm, A    *Node   // inputs (float32)
	Cm                *Node   // C in float32
	aRows             *Node   // A repeated for every (batch, block): [B, nb, D, N]
	a                 []*Node // a[j] = exp(A dt_j), [B, nb, D, N]
	m                 []*Node // m[j] = a[j] * (state before step j), nil where that state is zero or not built
	s                 []*Node // s[j] = state after step j of each block
	start             *Node   // state before each block: [B, nb, D, N], nil when there is one block
	aSum              *Node   // block decays
	y                 *Node
}

// phase returns steps j, j+R, j+2R, ... of x [B, T, ...], without gradient (ScanOutput's is
// written by hand).
func (f *scanForward) phase(x *Node, j int) *Node { return StopGradient(steps(x, j, f.R, f.nb)) }

// interleave is the inverse of phase: the R phases [B, nb, X] back to [B, T, X].
func (f *scanForward) interleave(xs []*Node) *Node {
	X := xs[0].Shape().Dimensions[2]
	if len(xs) == 1 {
		return xs[0]
	}
	return Reshape(Stack(xs, 2), f.B, f.T, X)
}

// scanOutputForward builds ScanOutput's forward on blocks of R steps; zero (a float32 scalar,
// zero in value) is added to the first phase's output.
func scanOutputForward(dt, dtx, Bm, Cm, A *Node, R int, zero *Node) *scanForward {
	g := dt.Graph()
	dims := dt.Shape().Dimensions
	B, T, D := dims[0], dims[1], dims[2]
	N := A.Shape().Dimensions[1]
	dtype := Cm.DType()
	nb := T / R
	f := &scanForward{B: B, T: T, D: D, N: N, R: R, nb: nb, dt: dt, dtx: dtx, Bm: Bm, A: A,
		Cm: ConvertDType(Cm, dtypes.Float32)}
	// A repeated for every (batch, block): the decays are then exp(A * dt) with dt broadcast
	// along the trailing state axis, a vectorised multiply (cheaper than decay's outer product).
	zeros := make([]int32, B*nb)
	aRows := Gather(Reshape(A, 1, D*N), ConstTensor(g, tensors.FromFlatDataAndDimensions(zeros, B*nb, 1)))
	f.aRows = StopGradient(Reshape(aRows, B, nb, D, N))
	blockDecay := func(dt *Node) *Node { return Exp(Mul(f.aRows, ExpandAxes(dt, -1))) }
	f.a, f.m, f.s = make([]*Node, R), make([]*Node, R), make([]*Node, R)
	b := make([]*Node, R)
	var dtSum *Node
	for j := range R {
		dtj := f.phase(dt, j)
		f.a[j] = blockDecay(dtj)
		b[j] = outer(f.phase(dtx, j), f.phase(Bm, j))
		if dtSum == nil {
			dtSum = dtj
		} else {
			dtSum = Add(dtSum, dtj)
		}
	}
	// Block summaries: s_{Rk+R-1} = aSum_k s_{Rk-1} + bSum_k.
	bSum := b[0]
	for j := 1; j < R; j++ {
		bSum = Add(Mul(f.a[j], bSum), b[j])
	}
	f.aSum = blockDecay(dtSum)
	ends := pairwiseScan(f.aSum, bSum) // states at steps Rk+R-1, [B, nb, D, N]
	if nb > 1 {
		f.start = Concatenate([]*Node{Zeros(g, shapes.Make(ends.DType(), B, 1, D, N)), steps(ends, 0, 1, nb-1)}, 1)
	}
	contractPhase := func(s *Node, j int) *Node {
		return contract(ConvertDType(s, dtype), f.phase(Cm, j))
	}
	ys := make([]*Node, R)
	s := f.start // state before the block's first step: zero for the first block
	for j := range R - 1 {
		if s == nil {
			s = b[j]
		} else {
			f.m[j] = Mul(f.a[j], s)
			s = Add(f.m[j], b[j])
		}
		f.s[j] = s
		ys[j] = contractPhase(s, j)
	}
	f.s[R-1] = ends
	ys[R-1] = contractPhase(ends, R-1)
	ys[0] = Add(ys[0], ConvertDType(zero, ys[0].DType()))
	f.y = f.interleave(ys)
	return f
}

// grad returns the gradients of sum(y * dy) w.r.t. dt, dtx, B, C and A, in float32. With e_t = dy_t C_t (outer product) the state cotangent runs backwards,
// g_t = e_t + a_{t+1} g_{t+1}; then with q_t = g_t a_t s_{t-1}:
//
//	ddt_t = sum_n q_t A,  ddtx_t = sum_n g_t B_t,  dB_t = sum_d g_t dtx_t,  dC_t = sum_d dy_t s_t,
//	dA = sum_{b,t} q_t dt_t.
//
// g is computed with the forward's blocks: each block's summary of the cotangents it sends back,
// E_k = sum_j (a_{Rk} ... a_{Rk+j}) e_{Rk+j}, a pairwise scan of H_k = aSum_k H_{k+1} + E_k over
// the reversed blocks for the cotangent entering each block from the next, and the sequential
// recurrence inside the block. A run start has a = 0, so q = 0 there and its huge dt adds nothing.
func (f *scanForward) grad(dy *Node) []*Node {
	g := dy.Graph()
	B, D, N, R, nb := f.B, f.D, f.N, f.R, f.nb
	dy = ConvertDType(dy, dtypes.Float32)
	dyP, e := make([]*Node, R), make([]*Node, R)
	for j := range R {
		dyP[j] = f.phase(dy, j)
		e[j] = outer(dyP[j], f.phase(f.Cm, j))
	}
	// The cotangent entering each block's last state from the next block, h_k = H_{k+1}.
	var h *Node
	if nb > 1 {
		P := e[R-1]
		for j := R - 2; j >= 0; j-- {
			P = Add(e[j], Mul(f.a[j+1], P))
		}
		E := Mul(f.a[0], P)
		rev := make([]int, nb)
		for i := range rev {
			rev[i] = nb - 1 - i
		}
		Hrev := pairwiseScan(rows(f.aSum, rev), rows(E, rev)) // Hrev[i] = H_{nb-1-i}
		h = Concatenate([]*Node{rows(Hrev, rev[1:]), Zeros(g, shapes.Make(dtypes.Float32, B, 1, D, N))}, 1)
	}
	ddt, ddtx, dB, dC := make([]*Node, R), make([]*Node, R), make([]*Node, R), make([]*Node, R)
	var dA *Node
	// sumD returns sum_d u[b,k,d] x[b,k,d,n] as [B, nb, N]: u is the lhs so that the Go backend's
	// dot needs no transpose of x.
	sumD := func(u, x *Node) *Node {
		return Reshape(DotGeneral(ExpandAxes(u, 2), []int{3}, []int{0, 1}, x, []int{2}, []int{0, 1}), B, nb, N)
	}
	var gj *Node
	for j := R - 1; j >= 0; j-- {
		switch {
		case j < R-1:
			gj = Add(e[j], Mul(f.a[j+1], gj))
		case h != nil:
			gj = Add(e[j], h)
		default:
			gj = e[j]
		}
		dtj := f.phase(f.dt, j)
		m := f.m[j]
		if m == nil {
			prev := f.start
			if j > 0 {
				prev = f.s[j-1]
			}
			if prev != nil {
				m = Mul(f.a[j], prev)
			}
		}
		if m != nil {
			q := Mul(gj, m)
			ddt[j] = ReduceSum(Mul(q, f.aRows), -1)
			qA := ReduceSum(Mul(q, ExpandAxes(dtj, -1)), 0, 1)
			if dA == nil {
				dA = qA
			} else {
				dA = Add(dA, qA)
			}
		} else {
			ddt[j] = ZerosLike(dtj)
		}
		ddtx[j] = contract(gj, f.phase(f.Bm, j))
		dB[j] = sumD(f.phase(f.dtx, j), gj)
		dC[j] = sumD(dyP[j], f.s[j])
	}
	if dA == nil {
		dA = ZerosLike(f.A)
	}
	return []*Node{f.interleave(ddt), f.interleave(ddtx), f.interleave(dB), f.interleave(dC), dA}
}

// ScanOutputFrom is ScanOutput continuing from the state h0 [B, D, N] float32 (s_{-1}; zeros if
// nil), as decoding from a cache does; it also returns the state after the last step, s_{T-1}
// [B, D, N] float32. h0 enters as the state before the first block: it is added into the first
// block's summary (s_{R-1} = aSum_0 h0 + bSum_0) and starts the first block's rebuilt states.
func ScanOutputFrom(dt, dtx, Bm, Cm, A, h0 *Node) (y, last *Node) {
	return scanOutputFrom(dt, dtx, Bm, Cm, A, h0, true)
}

// scanOutputFrom is ScanOutputFrom's forward, ScanOutput's blocks with a starting state (Step
// never takes gradients, so it has no hand-written backward; autodiff would still work).
func scanOutputFrom(dt, dtx, Bm, Cm, A, h0 *Node, wantLast bool) (y, last *Node) {
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
		y, last = scanOutputFrom(pad(dt), pad(dtx), pad(Bm), pad(Cm), A, h0, wantLast)
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
