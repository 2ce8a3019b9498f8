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
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/bench"
	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/training"
)

// benchConfig is ~9.7M parameters: MQA with 4 heads of 64 like gemma-2b's 8 heads of 256.
func benchConfig(t testing.TB) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "bench_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

const benchBatch, benchSeq = 8, 256

// benchModel is the benchmark model with the random weights of bench.RandomModel (seed 1), the
// ones `perpetual bench --config testdata/bench_config.json` times.
func benchModel(b *testing.B) (*Model, *lm.Model) {
	m, err := bench.RandomModel(benchConfig(b), 1, lm.LoadOptions{Backend: goldentest.Backend(b)})
	if err != nil {
		b.Fatal(err)
	}
	arch := m.Arch().(*Model)
	b.Logf("parameters: %d", arch.NumParams())
	return arch, m
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
	n := len(params)
	exec, err := NewExec(goldentest.Backend(b), func(inputs []*Node) *Node {
		p := goldentest.ParamsFrom(m.Specs(), inputs)
		return m.Logits(p, inputs[n], inputs[n+1], inputs[n+2])
	})
	if err != nil {
		b.Fatal(err)
	}
	tokens, _ := benchTokens(m.VocabSize())
	args := make([]any, 0, n+3)
	for _, p := range params {
		args = append(args, p)
	}
	args = append(args, tensors.FromValue(tokens), tensors.FromValue(positionRows()), tensors.FromValue(constRows(1)))
	run := func() {
		out, err := exec.Exec(args...)
		if err != nil {
			b.Fatal(err)
		}
		out[0].MustFinalizeAll()
	}
	run() // compile
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.ReportMetric(float64(b.N*benchBatch*benchSeq)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkTrainStep times the trainer's own optimizer step (training.Bench, the step Fit runs
// and `perpetual bench` times): 8 packed rows of 256 tokens, the summed cross-entropy and its
// gradient, global-norm clipping and AdamW on every parameter at the default options.
func BenchmarkTrainStep(b *testing.B) {
	_, model := benchModel(b)
	tb, err := training.NewBench(model, benchBatch, benchSeq, 1)
	if err != nil {
		b.Fatal(err)
	}
	first, err := tb.Step() // compile
	if err != nil {
		b.Fatal(err)
	}
	last := first
	b.ResetTimer()
	for range b.N {
		if last, err = tb.Step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*tb.Tokens())/b.Elapsed().Seconds(), "tokens/s")
	b.StopTimer()
	if math.IsNaN(last.Loss()) || (b.N >= 3 && !(last.Loss() < first.Loss())) {
		b.Fatalf("training did not reduce the loss: %g -> %g", first.Loss(), last.Loss())
	}
	b.Logf("loss %.4f -> %.4f after %d steps", first.Loss(), last.Loss(), b.N+1)
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
			var cfgMap map[string]any
			if err := json.Unmarshal([]byte(validConfig), &cfgMap); err != nil {
				b.Fatal(err)
			}
			cfgMap["num_hidden_layers"] = layers
			raw, _ := json.Marshal(cfgMap)
			cfg, err := ParseConfig(raw)
			if err != nil {
				b.Fatal(err)
			}
			m, _ := New(cfg)
			var params []any
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
			n := len(params)
			exec, err := NewExec(goldentest.Backend(b), func(inputs []*Node) *Node {
				return m.Logits(goldentest.ParamsFrom(m.Specs(), inputs), inputs[n], inputs[n+1], inputs[n+2])
			})
			if err != nil {
				b.Fatal(err)
			}
			const T = 512
			tok, pos, seg := make([]int32, T), make([]int32, T), make([]int32, T)
			for i := range T {
				tok[i], pos[i], seg[i] = int32(i*7919%256000), int32(i), 1
			}
			args := append(params, tensors.FromValue([][]int32{tok}), tensors.FromValue([][]int32{pos}), tensors.FromValue([][]int32{seg}))
			run := func() {
				out, err := exec.Exec(args...)
				if err != nil {
					b.Fatal(err)
				}
				out[0].MustFinalizeAll()
			}
			run()
			b.ResetTimer()
			for range b.N {
				run()
			}
			b.ReportMetric(float64(b.N*T)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
