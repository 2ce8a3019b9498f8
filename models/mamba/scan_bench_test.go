package mamba

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
)

// scanBenchF is d_inner*state_size of the benchmark model (512 x 16).
const scanBenchF = 512 * 16

func scanInputs(T int) (a, b *tensors.Tensor) {
	rng := rand.New(rand.NewPCG(7, 8))
	av, bv := make([]float32, T*scanBenchF), make([]float32, T*scanBenchF)
	for i := range av {
		av[i], bv[i] = float32(0.5+0.5*rng.Float64()), float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(av, 1, T, scanBenchF), tensors.FromFlatDataAndDimensions(bv, 1, T, scanBenchF)
}

// BenchmarkScan measures one layer's scan of the benchmark model (1 x T x 512 x 16), alone and
// with its gradient, for each implementation.
func BenchmarkScan(b *testing.B) {
	impls := []struct {
		name string
		scan func(a, b, h0 *Node) *Node
		maxT int
	}{
		{"pairwise", Scan, 2048},
		{"sequential", SequentialScan, 256},
	}
	for _, impl := range impls {
		for _, T := range []int{256, 2048} {
			if T > impl.maxT {
				continue
			}
			for _, grad := range []bool{false, true} {
				b.Run(fmt.Sprintf("%s/T=%d/grad=%v", impl.name, T, grad), func(b *testing.B) {
					exec, err := NewExec(goldentest.Backend(b), func(a, x *Node) *Node {
						s := impl.scan(a, x, nil)
						if !grad {
							return ReduceAllSum(s)
						}
						loss := ReduceAllSum(Square(s))
						g := Gradient(loss, a, x)
						return Add(ReduceAllSum(g[0]), ReduceAllSum(g[1]))
					})
					if err != nil {
						b.Fatal(err)
					}
					at, xt := scanInputs(T)
					run := func() {
						out, err := exec.Exec(at, xt)
						if err != nil {
							b.Fatal(err)
						}
						_ = out[0].Value().(float32)
					}
					run()
					b.ResetTimer()
					for range b.N {
						run()
					}
					b.ReportMetric(float64(b.N*T)/b.Elapsed().Seconds(), "tokens/s")
				})
			}
		}
	}
	_ = dtypes.Float32
}
