package lm_test

// The runtime against a real architecture: the tiny Gemma fixture of models/gemma (weights and
// logits from a plain-torch reference). Checks that Load + Logits reproduce the reference, that
// LogLikelihood is identical for every batch size and agrees with Logits, and that cached
// generation (Gemma's KV cache through Step) equals greedy recomputation.

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/compute/dtypes"

	_ "github.com/perpetual-ml/perpetual/models/gemma"
	"github.com/perpetual-ml/perpetual/models/lm"
	_ "github.com/perpetual-ml/perpetual/models/mamba"
)

func loadTinyGemma(t *testing.T, name string, dtype dtypes.DType) (*lm.Model, [][]int32, [][]float64) {
	t.Helper()
	return loadFixture(t, "gemma", name, dtype)
}

// loadFixture loads models/<family>/testdata/<name> and its reference sequences and logits.
func loadFixture(t *testing.T, family, name string, dtype dtypes.DType) (*lm.Model, [][]int32, [][]float64) {
	t.Helper()
	dir := filepath.Join("..", family, "testdata", name)
	m, err := lm.Load(dir, lm.LoadOptions{DType: dtype})
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Sequences [][]int32   `json:"sequences"`
		Logits    [][]float64 `json:"logits"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return m, g.Sequences, g.Logits
}

func TestGemmaLoadLogitsMatchReference(t *testing.T) {
	for _, name := range []string{"mha", "gqa_sharded"} {
		m, seqs, want := loadTinyGemma(t, name, dtypes.Float32)
		got, err := m.Logits(seqs)
		if err != nil {
			t.Fatal(err)
		}
		V := m.Arch().VocabSize()
		for s := range seqs {
			for tt := range seqs[s] {
				for v := range V {
					if d := math.Abs(float64(got[s][tt][v]) - want[s][tt*V+v]); d > 1e-3 {
						t.Fatalf("%s seq %d pos %d tok %d: %v vs reference %v", name, s, tt, v, got[s][tt][v], want[s][tt*V+v])
					}
				}
			}
		}
	}
}

func TestGemmaLogLikelihoodBatchInvariant(t *testing.T) {
	m, _, _ := loadTinyGemma(t, "mha", dtypes.Float32)
	V := m.Arch().VocabSize()
	r := rand.New(rand.NewPCG(1, 2))
	seq := func(n int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(r.IntN(V))
		}
		return s
	}
	var reqs []lm.Request
	for q := range 30 {
		ctx := seq(1 + r.IntN(40))
		if q%5 == 0 {
			for c := range 4 {
				reqs = append(reqs, lm.Request{Context: ctx, Continuation: []int32{int32(c)}})
			}
			continue
		}
		reqs = append(reqs, lm.Request{Context: ctx, Continuation: seq(1 + r.IntN(5))})
	}
	var first []lm.Result
	for _, bs := range []int{1, 7, 32} {
		got, err := m.LogLikelihood(reqs, bs)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			for i := range got {
				if got[i] != first[i] {
					t.Fatalf("batch size %d, request %d: %+v, batch size 1: %+v", bs, i, got[i], first[i])
				}
			}
		}
	}
	// Agreement with full logits computed on the host.
	for i, rq := range reqs[:8] {
		full := append(slices.Clone(rq.Context), rq.Continuation...)
		inp := full[:len(full)-1]
		l, err := m.Logits([][]int32{inp})
		if err != nil {
			t.Fatal(err)
		}
		var lp float64
		greedy := true
		for j, target := range rq.Continuation {
			row := l[0][len(inp)-len(rq.Continuation)+j]
			mx, best := row[0], 0
			for v, x := range row {
				if x > mx {
					mx, best = x, v
				}
			}
			var s float64
			for _, x := range row {
				s += math.Exp(float64(x - mx))
			}
			lp += float64(row[target]-mx) - math.Log(s)
			greedy = greedy && best == int(target)
		}
		if math.Abs(lp-first[i].LogProb) > 1e-3 || greedy != first[i].IsGreedy {
			t.Fatalf("request %d: LogLikelihood %+v, from Logits %v %v", i, first[i], lp, greedy)
		}
	}
}

func TestGemmaGenerateEqualsRecomputation(t *testing.T) {
	m, seqs, _ := loadTinyGemma(t, "gqa_sharded", dtypes.Float32)
	prompt := seqs[0]
	got, err := m.Generate(prompt, lm.GenerateOptions{MaxNewTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	cur := slices.Clone(prompt)
	for i := range got {
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
		if got[i] != int32(best) {
			t.Fatalf("token %d: cached %d, recomputed %d", i, got[i], best)
		}
		cur = append(cur, int32(best))
	}
}

func TestGemmaBFloat16(t *testing.T) {
	m, seqs, want := loadTinyGemma(t, "mha", dtypes.BFloat16)
	for _, w := range m.Weights() {
		if w.DType() != dtypes.BFloat16 {
			t.Fatalf("weight dtype %s", w.DType())
		}
	}
	got, err := m.Logits(seqs[:1])
	if err != nil {
		t.Fatal(err)
	}
	V := m.Arch().VocabSize()
	var worst float64
	for tt := range seqs[0] {
		for v := range V {
			worst = max(worst, math.Abs(float64(got[0][tt][v])-want[0][tt*V+v]))
		}
	}
	if worst > 0.5 {
		t.Fatalf("bf16 logits off by %v", worst)
	}
}
