package lm_test

// The runtime against the recurrent family: the tiny Mamba fixtures of models/mamba. Padding is
// on the right, so earlier positions must not see it; Generate goes through Step's conv and SSM
// state in power-of-two prefill pieces.

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/lm"
)

func TestMambaThroughRuntime(t *testing.T) {
	m, seqs, want := loadFixture(t, "mamba", "k4_bias_s16", dtypes.Float32)
	if m.Arch().MaxLength() != 0 {
		t.Fatalf("mamba MaxLength %d, want 0 (unbounded)", m.Arch().MaxLength())
	}
	got, err := m.Logits(seqs)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Arch().VocabSize()
	for s := range seqs {
		for tt := range seqs[s] {
			for v := range V {
				if d := math.Abs(float64(got[s][tt][v]) - want[s][tt*V+v]); d > 1e-3 {
					t.Fatalf("seq %d pos %d tok %d: %v vs reference %v", s, tt, v, got[s][tt][v], want[s][tt*V+v])
				}
			}
		}
	}

	r := rand.New(rand.NewPCG(9, 9))
	var reqs []lm.Request
	for q := range 20 {
		ctx := make([]int32, 1+r.IntN(30))
		for i := range ctx {
			ctx[i] = int32(r.IntN(V))
		}
		cont := []int32{int32(q % V), int32(r.IntN(V))}
		reqs = append(reqs, lm.Request{Context: ctx, Continuation: cont[:1+q%2]})
	}
	var first []lm.Result
	for _, bs := range []int{1, 7, 32} {
		res, err := m.LogLikelihood(reqs, bs)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res
		} else if !slices.Equal(res, first) {
			t.Fatalf("batch size %d changed results", bs)
		}
	}

	prompt := seqs[0][:7] // 4+2+1 prefill pieces
	gen, err := m.Generate(prompt, lm.GenerateOptions{MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	cur := slices.Clone(prompt)
	for i := range gen {
		l, err := m.Logits([][]int32{cur})
		if err != nil {
			t.Fatal(err)
		}
		last := l[0][len(cur)-1]
		best := 0
		for v := range last {
			if last[v] > last[best] {
				best = v
			}
		}
		if gen[i] != int32(best) {
			t.Fatalf("token %d: cached %d, recomputed %d", i, gen[i], best)
		}
		cur = append(cur, int32(best))
	}
}
