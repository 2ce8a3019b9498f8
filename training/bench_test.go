package training_test

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// BenchmarkTrainStep measures one optimizer step (one accumulate micro-batch of 2 full rows of
// 256 tokens, then clip + AdamW) of the harness's tiny models on the default backend, reporting
// trained tokens per second. Recorded in docs/training.md.
func BenchmarkTrainStep(b *testing.B) {
	for _, cfg := range []map[string]any{zootest.TinyGemma, zootest.TinyMamba} {
		b.Run(cfg["model_type"].(string)+"-tiny", func(b *testing.B) {
			_, m, _ := tinyModel(b, cfg)
			setup := training.FullSetup(m.Arch(), m.DType())
			steps, err := training.NewSteps(m.Backend(), setup)
			if err != nil {
				b.Fatal(err)
			}
			const B, T = 2, 256
			rng := rand.New(rand.NewPCG(1, 2))
			var rows []training.Row
			for r := 0; r < B; r++ {
				var row training.Row
				for i := 0; i < T; i++ {
					row.Tokens = append(row.Tokens, int32(rng.IntN(m.Arch().VocabSize())))
					row.Positions = append(row.Positions, int32(i))
					row.Segments = append(row.Segments, 1)
				}
				row.Targets = append(row.Tokens[1:T:T], 0)
				row.Weights = make([]float32, T)
				for i := 0; i < T-1; i++ {
					row.Weights[i] = 1
				}
				row.NumTargets = T - 1
				rows = append(rows, row)
			}
			batch := training.MakeBatch(rows, B, T)
			var train []*tensors.Tensor // copies: Apply donates its inputs
			for _, w := range m.WeightList() {
				c, err := w.Clone()
				if err != nil {
					b.Fatal(err)
				}
				train = append(train, c)
			}
			mo, v := setup.Zeros(), setup.Zeros()
			h := training.Hyper{LR: 1e-4, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1}
			step := func(i int) {
				acc, _, count, err := steps.Accumulate(nil, train, nil, batch)
				if err != nil {
					b.Fatal(err)
				}
				if train, mo, v, _, err = steps.Apply(train, mo, v, acc, h, i+1, count); err != nil {
					b.Fatal(err)
				}
			}
			step(0) // compile
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step(i + 1)
			}
			b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
