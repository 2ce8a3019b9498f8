package lm_test

// Throughput of the runtime on a ~10M-parameter Gemma (the shapes of models/gemma's benchmark)
// with random weights; numbers in docs/runtime.md.
//
//	go test ./models/lm/ -run '^$' -bench . -benchtime 3x

import (
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
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
