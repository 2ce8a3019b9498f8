package lm_test

// Throughput of the runtime on a ~10M-parameter Gemma (the shapes of models/gemma's benchmark)
// with random weights; numbers in docs/runtime.md.
//
//	go test ./models/lm/ -run '^$' -bench . -benchtime 3x

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	_ "github.com/perpetual-ml/perpetual/models/gemma" // model_type gemma
	"github.com/perpetual-ml/perpetual/models/lm"
	_ "github.com/perpetual-ml/perpetual/models/mamba" // model_type mamba
)

const benchConfig = `{"model_type":"gemma","vocab_size":8192,"hidden_size":256,"intermediate_size":1024,
"num_hidden_layers":8,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":64,
"max_position_embeddings":1024,"hidden_act":"gelu"}`

func benchModel(b *testing.B) *lm.Model {
	arch, err := lm.NewArchitecture(json.RawMessage(benchConfig))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	w := map[string]*tensors.Tensor{}
	for _, s := range arch.Specs() {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64() * 0.02)
		}
		w[s.Name] = tensors.FromFlatDataAndDimensions(data, s.Shape...)
	}
	m, err := lm.New(arch, json.RawMessage(benchConfig), w, lm.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkLogLikelihood scores 64 requests of a 200-token context and a 4-token continuation
// (multiple-choice shaped) at batch size 8; reports input tokens per second.
func BenchmarkLogLikelihood(b *testing.B) {
	m := benchModel(b)
	rng := rand.New(rand.NewPCG(3, 4))
	var reqs []lm.Request
	tokens := 0
	for range 64 {
		ctx := make([]int32, 200)
		for i := range ctx {
			ctx[i] = int32(rng.IntN(8192))
		}
		cont := []int32{int32(rng.IntN(8192)), 5, 6, 7}
		reqs = append(reqs, lm.Request{Context: ctx, Continuation: cont})
		tokens += len(ctx) + len(cont) - 1
	}
	if _, err := m.LogLikelihood(reqs[:8], 8); err != nil { // compile outside the timer
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.LogLikelihood(reqs, 8); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(tokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkSharedContext compares LogLikelihood with LogLikelihoodSharedContext on cloze-shaped
// requests (32 questions, each a context of 400-500 random tokens with 4 continuations of 2-6
// tokens, batch size 8) on the committed zoo models, gemma-tiny and mamba-tiny. Each iteration
// runs both paths one after the other, so a busy machine slows both alike; it reports each
// path's wall time and CPU time per call of 128 requests, their ratios, the largest |LogProb|
// difference and the number of requests whose greedy flags differ.
//
//	go test ./models/lm/ -run '^$' -bench SharedContext -benchtime 3x
func BenchmarkSharedContext(b *testing.B) {
	for _, name := range []string{"gemma-tiny", "mamba-tiny"} {
		b.Run(name, func(b *testing.B) {
			m, err := lm.Load(filepath.Join("..", "..", "zoo", "checkpoints", name), lm.LoadOptions{})
			if err != nil {
				b.Fatal(err)
			}
			V := m.Arch().VocabSize()
			rng := rand.New(rand.NewPCG(5, 6))
			var reqs []lm.Request
			for range 32 {
				ctx := make([]int32, 400+rng.IntN(101))
				for i := range ctx {
					ctx[i] = int32(rng.IntN(V))
				}
				for range 4 {
					cont := make([]int32, 2+rng.IntN(5))
					for i := range cont {
						cont[i] = int32(rng.IntN(V))
					}
					reqs = append(reqs, lm.Request{Context: ctx, Continuation: cont})
				}
			}
			// Compile every shape outside the timer, and compare the two paths' numbers.
			full, err := m.LogLikelihood(reqs, 8)
			if err != nil {
				b.Fatal(err)
			}
			shared, err := m.LogLikelihoodSharedContext(reqs, 8)
			if err != nil {
				b.Fatal(err)
			}
			maxDiff, greedyDiffer := 0.0, 0
			for i := range reqs {
				maxDiff = max(maxDiff, math.Abs(full[i].LogProb-shared[i].LogProb))
				if full[i].IsGreedy != shared[i].IsGreedy {
					greedyDiffer++
				}
			}
			var tFull, tShared, cFull, cShared time.Duration
			b.ResetTimer()
			for range b.N {
				t0, c0 := time.Now(), cpuTime()
				if _, err := m.LogLikelihood(reqs, 8); err != nil {
					b.Fatal(err)
				}
				t1, c1 := time.Now(), cpuTime()
				if _, err := m.LogLikelihoodSharedContext(reqs, 8); err != nil {
					b.Fatal(err)
				}
				tFull, tShared = tFull+t1.Sub(t0), tShared+time.Since(t1)
				cFull, cShared = cFull+c1-c0, cShared+cpuTime()-c1
			}
			n := float64(b.N)
			b.ReportMetric(float64(tFull.Nanoseconds())/n, "full-ns/op")
			b.ReportMetric(float64(tShared.Nanoseconds())/n, "shared-ns/op")
			b.ReportMetric(float64(tFull)/float64(tShared), "speedup")
			b.ReportMetric(float64(cFull.Nanoseconds())/n, "full-cpu-ns/op")
			b.ReportMetric(float64(cShared.Nanoseconds())/n, "shared-cpu-ns/op")
			b.ReportMetric(float64(cFull)/float64(cShared), "cpu-speedup")
			b.ReportMetric(maxDiff, "max-logprob-diff")
			b.ReportMetric(float64(greedyDiffer), "greedy-differ")
		})
	}
}

// cpuTime is the CPU time (user and system, all threads) this process has used: on a machine
// shared with other jobs it measures the work, where wall time also measures the waiting.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGenerate decodes 64 greedy tokens after a 64-token prompt with the KV cache.
func BenchmarkGenerate(b *testing.B) {
	m := benchModel(b)
	prompt := make([]int32, 64)
	for i := range prompt {
		prompt[i] = int32(i * 7)
	}
	opts := lm.GenerateOptions{MaxNewTokens: 64, StopTokens: nil}
	if _, err := m.Generate(prompt, opts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.Generate(prompt, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "new-tokens/s")
}

// BenchmarkSaveLoad writes the model in bf16 shards and loads it back as float32.
func BenchmarkSaveLoad(b *testing.B) {
	m := benchModel(b)
	dir := filepath.Join(b.TempDir(), "m")
	for range b.N {
		if err := m.Save(dir, checkpoint.SaveOptions{MaxShardSize: 8 << 20}); err != nil {
			b.Fatal(err)
		}
		if _, err := lm.Load(dir, lm.LoadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
