package customgrad

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
)

func random(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// Linear's and Operand's values and gradients are autodiff's of the plain products, up to
// float rounding, in both branches of TokenContract (out <= in: dy transposed; out much wider
// than in: x transposed and the product transposed back).
func TestGradientsMatchAutodiff(t *testing.T) {
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ out, in int }{{7, 5}, {3, 5}, {20, 4}} {
		x, w, r := random(rng, 2, 3, c.in), random(rng, c.out, c.in), random(rng, 2, 3, c.out)
		// Operand on an attention-like batched product: y[b, i, s] = sum_d q[b, i, d] k[b, s, d].
		q, k, rs := random(rng, 2, 6, 4), random(rng, 2, 5, 4), random(rng, 2, 6, 5)
		run := func(custom bool) []*tensors.Tensor {
			e, err := NewExec(be, func(x, w, r, q, k, rs *Node) []*Node {
				var y, s *Node
				scores := func(k *Node) *Node { return DotGeneral(q, []int{2}, []int{0}, k, []int{2}, []int{0}) }
				if custom {
					y = Linear(x, w)
					s = Operand(k, scores, func(ds *Node) *Node {
						return SwapLast(DotGeneral(SwapLast(q), []int{2}, []int{0}, ds, []int{1}, []int{0}))
					})
				} else {
					y, s = DotGeneral(x, []int{2}, nil, w, []int{1}, nil), scores(k)
				}
				loss := Add(ReduceAllSum(Mul(y, r)), ReduceAllSum(Mul(s, rs)))
				return append([]*Node{y, s}, Gradient(loss, x, w, q, k)...)
			})
			if err != nil {
				t.Fatal(err)
			}
			return e.MustExec(x, w, r, q, k, rs)
		}
		want, got := run(false), run(true)
		for i, name := range []string{"y", "scores", "dx", "dw", "dq", "dk"} {
			a, b := tensors.MustCopyFlatData[float32](want[i]), tensors.MustCopyFlatData[float32](got[i])
			if len(a) != len(b) {
				t.Fatalf("out %d in %d: %s has %d values, want %d", c.out, c.in, name, len(b), len(a))
			}
			for j := range a {
				if math.Abs(float64(a[j]-b[j])) > 1e-5*(1+math.Abs(float64(a[j]))) {
					t.Fatalf("out %d in %d: %s[%d] = %g, autodiff %g", c.out, c.in, name, j, b[j], a[j])
				}
			}
		}
	}
}
