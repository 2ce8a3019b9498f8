package evaluation

import (
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"
)

// BenchmarkEvaluatorOverhead measures everything but the model on the Perpetual products test
// (2,391 questions, letters): prompt rendering, encoding, dedup, sorting, scoring bookkeeping.
func BenchmarkEvaluatorOverhead(b *testing.B) {
	qs, _, err := LoadTest(testenv.File(b, "the Perpetual reference data", filepath.Join("..", "..", "shared", "datasets", "perpetual", "products", "test.json")))
	if err != nil {
		b.Fatal(err)
	}
	letters, _ := DefaultTask(Letters)
	for b.Loop() {
		if _, err := Evaluate(qs, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}, AddBOS: true, BOS: 2, MaxLength: 2048},
			Scorer: alwaysScorer{"B"}, BatchSize: 32}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(qs))*float64(b.N)/b.Elapsed().Seconds(), "questions/s")
}

// BenchmarkTinyGemmaLetters scores the 300 tiny questions with the tiny Gemma checkpoint on the
// Go backend (batch 32), letters formulation.
func BenchmarkTinyGemmaLetters(b *testing.B) {
	tk := loadTinyTokenizer(b, "gemma")
	qs, err := readQuestionsJSONL(filepath.Join("testdata", "tiny_questions.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	scorer := loadTinyModel(b, "gemma")
	letters, _ := DefaultTask(Letters)
	enc := Encoder{Tokenizer: tk, AddBOS: true, BOS: tk.bos, MaxLength: scorer.Arch().MaxLength()}
	for b.Loop() {
		if _, err := Evaluate(qs, Options{Task: letters, Encoder: enc, Scorer: scorer, BatchSize: 32}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(qs))*float64(b.N)/b.Elapsed().Seconds(), "questions/s")
}
