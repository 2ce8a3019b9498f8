package attention

// The pieces against host computations of their equations. The families' golden fixtures
// (lmtest.Conformance in models/gemma and models/llama) check them again inside whole models.

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
)

func run[F ExecGraphFn](t *testing.T, fn F, args ...any) []*tensors.Tensor {
	t.Helper()
	out, err := ExecOnceN(goldentest.Backend(t), fn, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPackedMask(t *testing.T) {
	// Row 0: documents of 3 and 2 tokens, then padding; row 1: one document of 6.
	positions := [][]int32{{0, 1, 2, 0, 1, 0}, {0, 1, 2, 3, 4, 5}}
	segments := [][]int32{{1, 1, 1, 2, 2, 0}, {1, 1, 1, 1, 1, 1}}
	for _, window := range []int{0, 1, 2, 4} {
		got := run(t, func(pos, seg *Node) *Node { return PackedMask(pos, seg, window) }, positions, segments)[0].Value().([][][][][]bool)
		for b := range positions {
			for q := range positions[b] {
				for k := range positions[b] {
					want := segments[b][q] == segments[b][k] && k <= q && (window == 0 || positions[b][q]-positions[b][k] < int32(window))
					if got[b][0][0][q][k] != want {
						t.Errorf("window %d: allowed[%d][%d][%d] = %v, want %v", window, b, q, k, got[b][0][0][q][k], want)
					}
				}
			}
		}
	}
}

func TestStepMaskAndPositions(t *testing.T) {
	const S, cacheLen, start = 3, 8, 2
	for _, window := range []int{0, 1, 3} {
		out := run(t, func(start *Node) []*Node {
			return []*Node{StepMask(start, S, cacheLen, window), StepPositions(start, S)}
		}, int32(start))
		got, pos := out[0].Value().([][][][][]bool), out[1].Value().([][]int32)
		for i := range S {
			if pos[0][i] != int32(start+i) {
				t.Errorf("StepPositions[%d] = %d, want %d", i, pos[0][i], start+i)
			}
			for s := range cacheLen {
				want := s <= start+i && (window == 0 || start+i-s < window)
				if got[0][0][0][i][s] != want {
					t.Errorf("window %d: query %d, slot %d: %v, want %v", window, i, s, got[0][0][0][i][s], want)
				}
			}
		}
	}
}

func TestCacheWriterWritesAtStart(t *testing.T) {
	shapes := CacheShapes(2, 2, 3, 5, dtypes.Float32)
	if len(shapes) != 4 || shapes[3].Name != "layers.1.v" || shapes[2].Dimensions[2] != 5 {
		t.Fatalf("CacheShapes = %+v", shapes)
	}
	const start = 2
	k := make([][][][]float32, 1)
	k[0] = [][][]float32{{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {10, 11, 12}}} // [1, KV=2, T=2, D=3]
	zeros := func() [][][][]float32 {
		z := [][][][]float32{make([][][]float32, 2)}
		for h := range z[0] {
			z[0][h] = make([][]float32, 5)
			for s := range z[0][h] {
				z[0][h][s] = make([]float32, 3)
			}
		}
		return z
	}
	out := run(t, func(ck, cv, k, start *Node) []*Node {
		cache := []*Node{ck, cv, ck, cv} // layer 1 written, layer 0 left alone
		newCache := make([]*Node, 4)
		keys, values := CacheWriter(cache, newCache, 1, start)(k, Neg(k))
		return []*Node{keys, values, newCache[2], newCache[3]}
	}, zeros(), zeros(), k, int32(start))
	keys, values, stored := out[0].Value().([][][][]float32), out[1].Value().([][][][]float32), out[2].Value().([][][][]float32)
	for h := range 2 {
		for s := range 5 {
			for d := range 3 {
				want := float32(0)
				if s >= start && s < start+2 {
					want = k[0][h][s-start][d]
				}
				if keys[0][h][s][d] != want || stored[0][h][s][d] != want || values[0][h][s][d] != -want {
					t.Errorf("head %d slot %d dim %d: keys %g, stored %g, values %g, want %g", h, s, d,
						keys[0][h][s][d], stored[0][h][s][d], values[0][h][s][d], want)
				}
			}
		}
	}
}

func TestRotaryRotatesHalfPairs(t *testing.T) {
	const D = 6
	inv := InvFreq(10000, D)
	x := [][][][]float32{{{{1, 2, 3, 4, 5, 6}}, {{-1, 0.5, 2, 0, 1, -3}}}} // [B=1, T=2, H=1, D]
	positions := [][]int32{{3, 7}}
	got := run(t, func(pos, x *Node) *Node {
		cos, sin := RotaryTables(pos, inv, dtypes.Float32)
		return ApplyRotary(x, cos, sin)
	}, positions, x)[0].Value().([][][][]float32)
	for tt := range 2 {
		for i := range D / 2 {
			a := float64(float32(float64(positions[0][tt]) * float64(float32(inv[i]))))
			x1, x2 := float64(x[0][tt][0][i]), float64(x[0][tt][0][i+D/2])
			want1, want2 := x1*math.Cos(a)-x2*math.Sin(a), x2*math.Cos(a)+x1*math.Sin(a)
			if math.Abs(float64(got[0][tt][0][i])-want1) > 1e-5 || math.Abs(float64(got[0][tt][0][i+D/2])-want2) > 1e-5 {
				t.Errorf("position %d pair %d: got (%g, %g), want (%g, %g)", positions[0][tt], i,
					got[0][tt][0][i], got[0][tt][0][i+D/2], want1, want2)
			}
		}
	}
}

func TestGroupedQueryMatchesHost(t *testing.T) {
	const B, T, H, KV, D = 2, 4, 4, 2, 3
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(heads int) [][][][]float32 {
		x := make([][][][]float32, B)
		for b := range x {
			x[b] = make([][][]float32, T)
			for i := range x[b] {
				x[b][i] = make([][]float32, heads)
				for h := range x[b][i] {
					x[b][i][h] = make([]float32, D)
					for d := range x[b][i][h] {
						x[b][i][h][d] = float32(r.NormFloat64())
					}
				}
			}
		}
		return x
	}
	q, k, v := rnd(H), rnd(KV), rnd(KV)
	positions := [][]int32{{0, 1, 2, 3}, {0, 1, 0, 1}}
	segments := [][]int32{{1, 1, 1, 1}, {1, 1, 2, 2}}
	const scale = 0.7
	for _, softCap := range []float64{0, 1.5} {
		got := run(t, func(q, k, v, pos, seg *Node) *Node {
			return GroupedQuery(q, k, v, Uncached, PackedMask(pos, seg, 0), scale, softCap)
		}, q, k, v, positions, segments)[0].Value().([][][]float32)
		for b := range B {
			for i := range T {
				for h := range H {
					kvh := h / (H / KV)
					var scores []float64
					var keys []int
					for j := 0; j <= i; j++ {
						if segments[b][j] != segments[b][i] {
							continue
						}
						s := 0.0
						for d := range D {
							s += float64(q[b][i][h][d]) * float64(k[b][j][kvh][d])
						}
						s *= scale
						if softCap > 0 {
							s = softCap * math.Tanh(s/softCap)
						}
						scores, keys = append(scores, s), append(keys, j)
					}
					maxS, sum := math.Inf(-1), 0.0
					for _, s := range scores {
						maxS = max(maxS, s)
					}
					for n := range scores {
						scores[n] = math.Exp(scores[n] - maxS)
						sum += scores[n]
					}
					for d := range D {
						want := 0.0
						for n, j := range keys {
							want += scores[n] / sum * float64(v[b][j][kvh][d])
						}
						if g := float64(got[b][i][h*D+d]); math.Abs(g-want) > 1e-5 {
							t.Errorf("cap %g: b %d t %d head %d dim %d: %g, want %g", softCap, b, i, h, d, g, want)
						}
					}
				}
			}
		}
	}
}
