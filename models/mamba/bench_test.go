package mamba

// Throughput benchmarks for docs/mamba.md on a ~10M-parameter Mamba (testdata/bench_config.json,
// also read by scripts/bench_peer.py and `make bench-peer`), 2,048 tokens per step as 8 x 256 or
// 1 x 2048. Compilation happens before the timer starts.
//
//	go test ./models/mamba/ -run '^$' -bench . -benchtime 3x

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/perpetual-ml/perpetual/training/trainingtest"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// benchConfig is testdata/bench_config.json, 9,981,696 parameters: mamba-2.8b's layer shape
// scaled down (state 16, expand 2, conv 4, time_step_rank auto).
func benchConfig(t testing.TB) json.RawMessage { return trainingtest.BenchConfig(t) }

// benchShapes are the (batch, sequence) shapes measured; each is 2,048 tokens.
var benchShapes = [][2]int{{8, 256}, {1, 2048}}

// benchModel is trainingtest.BenchModel (the random weights `perpetual bench` times) and its
// architecture.
func benchModel(b *testing.B) (*Model, *lm.Model) {
	m := trainingtest.BenchModel(b)
	return m.Arch().(*Model), m
}

func benchTokens(vocab, B, T int) (tokens, targets, positions, segments [][]int32) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range B {
		row := make([]int32, T+1)
		pos, seg := make([]int32, T), make([]int32, T)
		for i := range row {
			row[i] = int32(rng.IntN(vocab))
		}
		for i := range pos {
			pos[i], seg[i] = int32(i), 1
		}
		tokens, targets = append(tokens, row[:T]), append(targets, row[1:])
		positions, segments = append(positions, pos), append(segments, seg)
	}
	return
}

// BenchmarkForward: scoring throughput (logits for every position).
func BenchmarkForward(b *testing.B) {
	for _, bt := range benchShapes {
		b.Run(fmt.Sprintf("B=%d,T=%d", bt[0], bt[1]), func(b *testing.B) {
			m, model := benchModel(b)
			tokens, _, positions, segments := benchTokens(m.VocabSize(), bt[0], bt[1])
			goldentest.BenchLogits(b, m, model.WeightList(), tokens, positions, segments)
		})
	}
}

// BenchmarkTrainStep times the trainer's own optimizer step (training.Bench, the step Fit runs
// and `perpetual bench` times): packed rows, the summed cross-entropy and its gradient through
// the scan, global-norm clipping and AdamW on every parameter at the default options.
func BenchmarkTrainStep(b *testing.B) {
	for _, bt := range benchShapes {
		b.Run(fmt.Sprintf("B=%d,T=%d", bt[0], bt[1]), func(b *testing.B) {
			_, model := benchModel(b)
			trainingtest.BenchTrainStep(b, model, bt[0], bt[1])
		})
	}
}
