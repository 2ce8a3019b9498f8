package gemma

// Throughput benchmarks for docs/gemma.md on a ~10M-parameter Gemma (testdata/bench_config.json,
// also read by testdata/bench_torch.py, scripts/bench_peer.py and `make bench-peer`).
// Compilation happens before the timer starts.
//
//	go test ./models/gemma/ -run '^$' -bench . -benchtime 5x

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/perpetual-ml/perpetual/training/trainingtest"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// benchConfig is testdata/bench_config.json, ~9.7M parameters: MQA with 4 heads of 64 like
// gemma-2b's 8 heads of 256.
func benchConfig(t testing.TB) json.RawMessage { return trainingtest.BenchConfig(t) }

const benchBatch, benchSeq = 8, 256

// benchModel is trainingtest.BenchModel (the random weights `perpetual bench` times) and its
// architecture.
func benchModel(b *testing.B) (*Model, *lm.Model) {
	m := trainingtest.BenchModel(b)
	return m.Arch().(*Model), m
}

func benchTokens(vocab int) (tokens, targets [][]int32) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range benchBatch {
		row := make([]int32, benchSeq+1)
		for i := range row {
			row[i] = int32(rng.IntN(vocab))
		}
		tokens, targets = append(tokens, row[:benchSeq]), append(targets, row[1:])
	}
	return
}

func constRows(v int32) [][]int32 {
	rows := make([][]int32, benchBatch)
	for i := range rows {
		rows[i] = make([]int32, benchSeq)
		for j := range rows[i] {
			rows[i][j] = v
		}
	}
	return rows
}

func positionRows() [][]int32 {
	rows := constRows(0)
	for i := range rows {
		for j := range rows[i] {
			rows[i][j] = int32(j)
		}
	}
	return rows
}

// BenchmarkForward: scoring throughput (logits for every position), batch 8 x 256 tokens.
func BenchmarkForward(b *testing.B) { benchForward(b, dtypes.Float32) }

// BenchmarkForwardBF16: the same with bfloat16 weights and activations (float32 logits).
func BenchmarkForwardBF16(b *testing.B) { benchForward(b, dtypes.BFloat16) }

func benchForward(b *testing.B, dtype dtypes.DType) {
	m, model := benchModel(b)
	params := model.WeightList()
	if dtype != dtypes.Float32 {
		for i, p := range params {
			params[i] = goldentest.ToTensor(tensors.MustCopyFlatData[float32](p), dtype, p.Shape().Dimensions)
		}
	}
	tokens, _ := benchTokens(m.VocabSize())
	goldentest.BenchLogits(b, m, params, tokens, positionRows(), constRows(1))
}

// BenchmarkTrainStep times the trainer's own optimizer step (training.Bench, the step Fit runs
// and `perpetual bench` times): 8 packed rows of 256 tokens, the summed cross-entropy and its
// gradient, global-norm clipping and AdamW on every parameter at the default options.
func BenchmarkTrainStep(b *testing.B) {
	_, model := benchModel(b)
	trainingtest.BenchTrainStep(b, model, benchBatch, benchSeq)
}

// BenchmarkForward2BShapes times one sequence of 512 tokens through gemma-2b's real shapes with
// 1 and with 2 decoder layers (vocab 256,000, hidden 2,048, MLP 16,384, 8 heads / 1 KV head of
// 256), float32. The difference is one layer's cost; the rest is embedding + head, so the full
// 18-layer model's time is t1 + 17*(t2 - t1). It needs ~6 GiB of memory, so it only runs with
// PERPETUAL_BENCH_2B=1.
func BenchmarkForward2BShapes(b *testing.B) {
	if os.Getenv("PERPETUAL_BENCH_2B") == "" {
		b.Skip("set PERPETUAL_BENCH_2B=1 (needs ~6 GiB)")
	}
	for _, layers := range []int{1, 2} {
		b.Run(fmt.Sprintf("layers=%d", layers), func(b *testing.B) {
			cfg, err := ParseConfig(goldentest.Edited(b, validConfig, fmt.Sprintf(`"num_hidden_layers":%d`, layers)))
			if err != nil {
				b.Fatal(err)
			}
			m, _ := New(cfg)
			var params []*tensors.Tensor
			state := uint32(1)
			for _, s := range m.Specs() {
				size := 1
				for _, d := range s.Shape {
					size *= d
				}
				data := make([]float32, size)
				for i := range data { // cheap xorshift values in [-0.02, 0.02]
					state ^= state << 13
					state ^= state >> 17
					state ^= state << 5
					data[i] = (float32(state)/float32(math.MaxUint32) - 0.5) * 0.04
				}
				params = append(params, tensors.FromFlatDataAndDimensions(data, s.Shape...))
			}
			const T = 512
			tok, pos, seg := make([]int32, T), make([]int32, T), make([]int32, T)
			for i := range T {
				tok[i], pos[i], seg[i] = int32(i*7919%256000), int32(i), 1
			}
			goldentest.BenchLogits(b, m, params, [][]int32{tok}, [][]int32{pos}, [][]int32{seg})
		})
	}
}
