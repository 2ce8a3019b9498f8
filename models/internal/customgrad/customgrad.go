// Package customgrad is a linear layer with hand-written gradients, for training graphs: the
// same sums as GoMLX's DotGeneral gradient, contracted in layouts the Go backend runs with
// fewer transposes.
//
// GoMLX's DotGeneral gradient for a weight, dy^T x summed over the tokens, contracts a leading
// axis of both operands; the Go backend's DotGeneral wants contracting axes last and transposes
// both of them first (at the bench shapes, with the [tokens, vocab] logits gradient of a tied
// head among them, a quarter of the training step). Linear transposes only the smaller of them
// (TokenContract). Only the order of the float additions changes.
package customgrad

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.
)

// Linear is DotGeneral(x [..., in], w [out, in]) -> [..., out], contracting in (x w^T for a
// PyTorch-layout weight), with hand-written gradients: dx = dy w (as GoMLX's) and
// dw = TokenContract(dy, x).
//
// GoMLX only has single-input custom gradients (IdentityWithCustomGradient), so dy is captured
// by an identity on the output and read by identities on x and w: reverse-mode autodiff
// visits nodes in reverse creation order, so the output's gradient is complete before the
// inputs' are asked for. The gradients autodiff derives through the product are built but
// never read, and the Go backend never runs a node no output reads. The Go backend copies an
// identity's input when another node still reads it (a weight, an input shared by several
// layers): the copies are read by the forward product only and freed after it, which is why
// both gradients are written here (GoMLX's dx would read w's copy in the backward pass and keep
// a second copy of every weight alive). Use it in graphs that take gradients only: in a
// forward-only graph the copies are pure cost.
func Linear(x, w *Node) *Node {
	var dy *Node
	need := func() *Node {
		if dy == nil {
			panic("customgrad.Linear: an input's gradient was asked for before the output's")
		}
		return dy
	}
	xc := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		dy := need()
		return DotGeneral(dy, []int{dy.Rank() - 1}, nil, w, []int{0}, nil) // [..., in]
	})
	wc := IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		dy := need()
		if dy.DType() != w.DType() {
			dy = ConvertDType(dy, w.DType())
		}
		return TokenContract(dy, x)
	})
	y := DotGeneral(xc, []int{x.Rank() - 1}, nil, wc, []int{1}, nil)
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		dy = v
		return v
	})
}

// TokenContract is sum over the shared leading axes t of a[t, i] b[t, j], [I, J], for a
// [..., I] and b [..., J] with the same leading (token) axes: the weight gradient dy^T x of a
// linear layer (a = dy, b = x). Both are flattened to [N, features] (free) and one of them is
// transposed, so the product runs in the backend's native [rows, N] x [N, cols] layout: a^T b,
// or (b^T a)^T when transposing b and the [J, I] result moves fewer elements (a layer whose
// output is wider than its input; the tied head, whose dy is the [tokens, vocab] logits
// gradient).
func TokenContract(a, b *Node) *Node {
	I, J := a.Shape().Dimensions[a.Rank()-1], b.Shape().Dimensions[b.Rank()-1]
	n := a.Shape().Size() / I
	a2, b2 := Reshape(a, n, I), Reshape(b, n, J)
	if n*I <= n*J+I*J {
		return DotGeneral(Transpose(a2, 0, 1), []int{1}, nil, b2, []int{0}, nil) // [I, J]
	}
	return Transpose(DotGeneral(Transpose(b2, 0, 1), []int{1}, nil, a2, []int{0}, nil), 0, 1) // [J, I] -> [I, J]
}

// Operand returns f(x), where x's gradient is grad(dy) with dy the gradient of f(x), instead of
// the one autodiff derives through f; f's other inputs get autodiff's. grad must return x's
// shape and dtype. As in Linear, dy is captured by an identity on f's output. x should be read
// by f only (then the backend's identity reuses x's buffer instead of copying it).
func Operand(x *Node, f func(x *Node) *Node, grad func(dy *Node) *Node) *Node {
	var dy *Node
	xc := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		if dy == nil {
			panic("customgrad.Operand: the operand's gradient was asked for before the output's")
		}
		return grad(dy)
	})
	return IdentityWithCustomGradient(f(xc), func(_, v *Node) *Node {
		dy = v
		return v
	})
}

// SwapLast transposes the last two axes of x [..., m, n] -> [..., n, m].
func SwapLast(x *Node) *Node {
	r := x.Rank()
	return Transpose(x, r-2, r-1)
}
