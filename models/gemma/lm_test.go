package gemma

// The same golden checks through the shared runtime (lm.Load, Logits, LogLikelihood, Generate):
// what evaluation and the CLI actually call on a Gemma folder.

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

func loadLM(t *testing.T, name string, dtype dtypes.DType) *lm.Model {
	t.Helper()
	m, err := lm.Load(filepath.Join("testdata", name), lm.LoadOptions{DType: dtype})
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch().Family() != "gemma" {
		t.Fatalf("loaded family %q", m.Arch().Family())
	}
	return m
}

func TestLMLoadGoldenLogits(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			f := loadFixture(t, name)
			m := loadLM(t, name, dtypes.Float32)
			got, err := m.Logits(f.golden.Sequences)
			if err != nil {
				t.Fatal(err)
			}
			for i := range f.golden.Sequences {
				rel, maxAbs := goldentest.Compare(goldentest.Flatten(got[i]), f.golden.Logits[i])
				if rel > 1e-4 || math.IsNaN(rel) {
					t.Errorf("sequence %d: relative error %.2e (max abs %.2e)", i, rel, maxAbs)
				}
			}
		})
	}
	t.Run("mha in float16", func(t *testing.T) {
		// float16 keeps 11 bits of mantissa: a few 1e-3 of relative error against float32.
		f := loadFixture(t, "mha")
		got, err := loadLM(t, "mha", dtypes.Float16).Logits(f.golden.Sequences)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.golden.Sequences {
			rel, _ := goldentest.Compare(goldentest.Flatten(got[i]), f.golden.Logits[i])
			t.Logf("sequence %d: float16 vs float32 reference %.2e", i, rel)
			if rel > 1e-2 || math.IsNaN(rel) {
				t.Errorf("sequence %d: relative error %.2e", i, rel)
			}
		}
	})
	t.Run("gqa_bf16 in bfloat16", func(t *testing.T) {
		f := loadFixture(t, "gqa_bf16")
		got, err := loadLM(t, "gqa_bf16", dtypes.BFloat16).Logits(f.golden.Sequences)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.golden.Sequences {
			if rel, _ := goldentest.Compare(goldentest.Flatten(got[i]), f.golden.LogitsBF16[i]); rel > 3e-2 || math.IsNaN(rel) {
				t.Errorf("sequence %d: relative error %.2e vs PyTorch bf16", i, rel)
			}
		}
	})
}

// referenceScore computes a Request's log-probability and greedy flag from the golden logits of
// the whole sequence (context + continuation), in float64.
func referenceScore(logits []float64, vocab int, seq []int32, ctxLen int) (float64, bool) {
	var sum float64
	greedy := true
	for pos := ctxLen; pos < len(seq); pos++ {
		row := logits[(pos-1)*vocab : pos*vocab]
		maxV, arg := math.Inf(-1), 0
		for j, v := range row {
			if v > maxV {
				maxV, arg = v, j
			}
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - maxV)
		}
		sum += row[seq[pos]] - maxV - math.Log(z)
		greedy = greedy && arg == int(seq[pos])
	}
	return sum, greedy
}

// LogLikelihood (batched, padded) against the reference; results independent of batch size.
func TestLMLogLikelihood(t *testing.T) {
	f := loadFixture(t, "mqa")
	m := loadLM(t, "mqa", dtypes.Float32)
	V := f.model.VocabSize()
	var reqs []lm.Request
	var want []float64
	var wantGreedy []bool
	for i, seq := range f.golden.Sequences {
		for _, ctx := range []int{1, len(seq) / 2, len(seq) - 1} {
			reqs = append(reqs, lm.Request{Context: seq[:ctx], Continuation: seq[ctx:]})
			lp, g := referenceScore(f.golden.Logits[i], V, seq, ctx)
			want, wantGreedy = append(want, lp), append(wantGreedy, g)
		}
	}
	// A continuation that is greedy by construction: the argmax after the context.
	seq := f.golden.Sequences[1]
	row := f.golden.Logits[1][3*V : 4*V]
	arg := 0
	for j := range row {
		if row[j] > row[arg] {
			arg = j
		}
	}
	greedySeq := append(append([]int32{}, seq[:4]...), int32(arg))
	reqs = append(reqs, lm.Request{Context: seq[:4], Continuation: []int32{int32(arg)}})
	lp, _ := referenceScore(f.golden.Logits[1][:5*V], V, greedySeq, 4)
	want, wantGreedy = append(want, lp), append(wantGreedy, true)

	for _, batchSize := range []int{1, 4, len(reqs)} {
		res, err := m.LogLikelihood(reqs, batchSize)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if math.Abs(r.LogProb-want[i]) > 1e-4*(1+math.Abs(want[i])) || r.IsGreedy != wantGreedy[i] {
				t.Errorf("batch %d, request %d: got (%.6f, %v), want (%.6f, %v)", batchSize, i, r.LogProb, r.IsGreedy, want[i], wantGreedy[i])
			}
		}
	}
}

// Greedy generation through the KV cache equals argmax decoding by recomputing the whole
// sequence each step.
func TestLMGenerateMatchesRecomputation(t *testing.T) {
	for _, name := range []string{"gqa_sharded", "mha"} {
		f := loadFixture(t, name)
		m := loadLM(t, name, dtypes.Float32)
		prompt := f.golden.Sequences[0][:5]
		out, err := m.Generate(prompt, lm.GenerateOptions{MaxNewTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 8 {
			t.Fatalf("%s: generated %d tokens, want 8", name, len(out))
		}
		seq := append([]int32{}, prompt...)
		for step := range out {
			logits, err := m.Logits([][]int32{seq})
			if err != nil {
				t.Fatal(err)
			}
			last := logits[0][len(seq)-1]
			arg := 0
			for j := range last {
				if last[j] > last[arg] {
					arg = j
				}
			}
			if int32(arg) != out[step] {
				t.Fatalf("%s: step %d generated %d, recomputation's argmax is %d", name, step, out[step], arg)
			}
			seq = append(seq, int32(arg))
		}
	}
}
