package training_test

import (
	"testing"

	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// BenchmarkTrainStep measures one optimizer step of the trainer (training.Bench: Fit's own
// step, 2 packed rows of 256 tokens, one micro-batch, then clip + AdamW) of the harness's tiny
// models on the default backend, reporting trained tokens per second. Recorded in
// docs/training.md.
func BenchmarkTrainStep(b *testing.B) {
	for _, cfg := range []map[string]any{zootest.TinyGemma, zootest.TinyMamba} {
		b.Run(cfg["model_type"].(string)+"-tiny", func(b *testing.B) {
			_, m, _ := tinyModel(b, cfg)
			tb, err := training.NewBench(m, 2, 256, 1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tb.Step(); err != nil { // compile
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := tb.Step(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(tb.Tokens()*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
