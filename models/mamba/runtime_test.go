package mamba

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// The fixture folders load as real Hugging Face folders through the shared runtime (safetensors,
// tied-head alias or separate lm_head, bf16 widening) and give the reference logits; greedy
// generation through Step continues with the argmax of the whole-sequence logits.
func TestRuntimeLoadLogitsAndGenerate(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			m, err := lm.Load(filepath.Join("testdata", name), lm.LoadOptions{Backend: goldentest.Backend(t)})
			if err != nil {
				t.Fatal(err)
			}
			f := loadFixture(t, name)
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
			prompt := f.golden.Sequences[0]
			out, err := m.Generate(prompt, lm.GenerateOptions{MaxNewTokens: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 4 {
				t.Fatalf("generated %d tokens, want 4", len(out))
			}
			seq := append([]int32(nil), prompt...)
			for _, tok := range out {
				full, err := m.Logits([][]int32{seq})
				if err != nil {
					t.Fatal(err)
				}
				if want := argmax(full[0][len(seq)-1]); tok != want {
					t.Fatalf("after %d tokens: generated %d, argmax of full logits %d", len(seq), tok, want)
				}
				seq = append(seq, tok)
			}
		})
	}
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}
