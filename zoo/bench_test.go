package zoo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// BenchmarkGenerate times greedy generation with the committed zoo models (docs/zoo.md):
// the prefill of prompts of several lengths and the decoding of 64 tokens after them, as
// decode tokens/s, so the cost per decoded token can be compared across prompt lengths (flat for
// Mamba's recurrent state, growing with the cache for attention).
//
//	go test -run '^$' -bench Generate -benchtime 3x ./zoo
func BenchmarkGenerate(b *testing.B) {
	cfg, err := DefaultConfig()
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range cfg.Names() {
		if !Committed(cfg, name) {
			b.Fatalf("%s: no committed checkpoint", name)
		}
		dir := b.TempDir()
		if err := Materialize(context.Background(), cfg, name, dir, Options{}); err != nil {
			b.Fatal(err)
		}
		m, err := lm.Load(dir, lm.LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, promptLen := range []int{32, 256, 768} {
			prompt := make([]int32, promptLen)
			for i := range prompt {
				prompt[i] = int32(300 + i%500)
			}
			b.Run(fmt.Sprintf("%s/prompt=%d", name, promptLen), func(b *testing.B) {
				const newTokens = 64
				var prefill, decode time.Duration
				for range b.N {
					start := time.Now()
					var first time.Time
					n := 0
					_, err := m.Generate(prompt, lm.GenerateOptions{MaxNewTokens: newTokens, OnToken: func(int32) bool {
						if n == 0 {
							first = time.Now()
						}
						n++
						return true
					}})
					if err != nil {
						b.Fatal(err)
					}
					prefill += first.Sub(start)
					decode += time.Since(first)
				}
				b.ReportMetric(float64(prefill.Milliseconds())/float64(b.N), "prefill_ms")
				b.ReportMetric(float64(b.N*(newTokens-1))/decode.Seconds(), "decode_tok/s")
			})
		}
	}
}
