package evaluation

import (
	"math"
	"slices"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// The shared-context scorer (lm.SharedContextScorer) on the reference's questions of
// TestTinyModelsMatchReference, in the cloze formulation (each question's choices, several
// tokens each, after one context): the reference's decisions, greedy flags and log-likelihoods,
// and the full path's within 1e-4. (Truncated requests, which the scorer hands to the full path,
// are models/lm's TestLogLikelihoodSharedContextEqualsFullPath.)
func TestTinyModelsSharedContextMatchReference(t *testing.T) {
	qs, refs := readTinyFixtures(t)
	task, err := DefaultTask(Cloze)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gemma", "mamba"} {
		t.Run(name, func(t *testing.T) {
			tk := loadTinyTokenizer(t, name)
			m := loadTinyModel(t, name)
			want := refs[name].Formulations[Cloze]
			enc := Encoder{Tokenizer: tk, AddBOS: refs[name].AddBOS, BOS: tk.bos, MaxLength: m.Arch().MaxLength()}
			full, err := Evaluate(qs, Options{Task: task, Encoder: enc, Scorer: m, BatchSize: 7, ModelKey: "tiny"})
			if err != nil {
				t.Fatal(err)
			}
			shared, err := Evaluate(qs, Options{Task: task, Encoder: enc, Scorer: lm.SharedContextScorer{Model: m}, BatchSize: 7, ModelKey: "tiny+shared"})
			if err != nil {
				t.Fatal(err)
			}
			if len(shared.Samples) != len(want.Samples) {
				t.Fatalf("%d samples, reference %d", len(shared.Samples), len(want.Samples))
			}
			maxDiff, truncated := 0.0, 0
			for i, s := range shared.Samples {
				w, f := want.Samples[i], full.Samples[i]
				if s.Doc.ID != w.ID || s.Prediction != w.Prediction || s.Acc != w.Acc || s.AccNorm != w.AccNorm ||
					s.AccBytes != w.AccBytes || !slices.Equal(s.IsGreedy, w.IsGreedy) || !slices.Equal(s.ContTokens, w.ContTokens) ||
					!slices.Equal(s.IsGreedy, f.IsGreedy) || s.PredNorm != f.PredNorm {
					t.Fatalf("question %s:\n shared %+v\nreference %+v", w.ID, s, w)
				}
				for c := range s.LogLiks {
					d := math.Abs(s.LogLiks[c] - f.LogLiks[c])
					maxDiff = max(maxDiff, d)
					if d > 1e-4 || math.Abs(s.LogLiks[c]-w.LogLiks[c]) > 1e-4*max(1, math.Abs(w.LogLiks[c])) {
						t.Fatalf("question %s choice %d: shared %v, full path %v, reference %v", w.ID, c, s.LogLiks[c], f.LogLiks[c], w.LogLiks[c])
					}
				}
				if s.TruncatedTokens > 0 {
					truncated++
				}
			}
			if truncated != want.QuestionsTruncated {
				t.Errorf("%d questions truncated, reference %d", truncated, want.QuestionsTruncated)
			}
			t.Logf("%d questions (%d truncated): largest |log-likelihood - full path's| %.2e", len(shared.Samples), truncated, maxDiff)
		})
	}
}
