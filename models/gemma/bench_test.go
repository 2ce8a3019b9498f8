package gemma

// Throughput benchmarks for docs/gemma.md on a ~10M-parameter Gemma (same shapes as
// testdata/bench_torch.py). Compilation happens before the timer starts.
//
//	go test ./models/gemma/ -run '^$' -bench . -benchtime 5x

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
)

// benchConfig is ~9.7M parameters: MQA with 4 heads of 64 like gemma-2b's 8 heads of 256.
const benchConfig = `{"model_type":"gemma","vocab_size":8192,"hidden_size":256,"intermediate_size":1024,
"num_hidden_layers":8,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":64,
"max_position_embeddings":1024,"hidden_act":"gelu"}`

const benchBatch, benchSeq = 8, 256

func benchModel(b *testing.B) (*Model, []*tensors.Tensor) {
	cfg, err := ParseConfig(json.RawMessage(benchConfig))
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var params []*tensors.Tensor
	for _, s := range m.Specs() {
		size := 1
		for _, d := range s.Shape {
			size *= d
		}
		data := make([]float32, size)
		for i := range data {
			data[i] = float32(rng.NormFloat64() * 0.02)
		}
		params = append(params, tensors.FromFlatDataAndDimensions(data, s.Shape...))
	}
	b.Logf("parameters: %d", m.NumParams())
	return m, params
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
	m, params := benchModel(b)
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

// BenchmarkTrainStep: forward, mean cross-entropy over all positions, backward and an AdamW
// update of every parameter (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01), all in one
// graph; the updated parameters and moments are fed back each step.
func BenchmarkTrainStep(b *testing.B) {
	m, params := benchModel(b)
	n := len(params)
	const lr, beta1, beta2, eps, decay = 1e-3, 0.9, 0.999, 1e-8, 0.01
	exec, err := NewExec(goldentest.Backend(b), func(inputs []*Node) []*Node {
		theta, mom, vel := inputs[:n], inputs[n:2*n], inputs[2*n:3*n]
		step, tokens, targets := inputs[3*n], inputs[3*n+1], inputs[3*n+2]
		p := goldentest.ParamsFrom(m.Specs(), theta)
		positions := Iota(tokens.Graph(), tokens.Shape(), 1)
		logits := m.Logits(p, tokens, positions, OnesLike(tokens))
		loss := ReduceAllMean(crossEntropy(logits, targets))
		grads := Gradient(loss, theta...)
		t := ConvertDType(OnePlus(step), dtypes.Float32)
		bias1 := OneMinus(Pow(Scalar(t.Graph(), dtypes.Float32, beta1), t))
		bias2 := OneMinus(Pow(Scalar(t.Graph(), dtypes.Float32, beta2), t))
		outs := make([]*Node, 3*n+1)
		for i := range n {
			mi := Add(MulScalar(mom[i], beta1), MulScalar(grads[i], 1-beta1))
			vi := Add(MulScalar(vel[i], beta2), MulScalar(Square(grads[i]), 1-beta2))
			update := Div(Div(mi, bias1), AddScalar(Sqrt(Div(vi, bias2)), eps))
			outs[i] = Sub(MulScalar(theta[i], 1-lr*decay), MulScalar(update, lr))
			outs[n+i], outs[2*n+i] = mi, vi
		}
		outs[3*n] = loss
		return outs
	})
	if err != nil {
		b.Fatal(err)
	}
	tokens, targets := benchTokens(m.VocabSize())
	state := make([]*tensors.Tensor, 3*n)
	copy(state, params)
	for i, p := range params {
		zeros := make([]float32, p.Size())
		state[n+i] = tensors.FromFlatDataAndDimensions(zeros, p.Shape().Dimensions...)
		state[2*n+i] = tensors.FromFlatDataAndDimensions(append([]float32(nil), zeros...), p.Shape().Dimensions...)
	}
	tok, tgt := tensors.FromValue(tokens), tensors.FromValue(targets)
	var lastLoss float32
	stepNum := 0
	run := func() {
		args := make([]any, 0, 3*n+3)
		for _, s := range state {
			args = append(args, s)
		}
		args = append(args, tensors.FromScalar(int32(stepNum)), tok, tgt)
		out, err := exec.Exec(args...)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range state {
			s.MustFinalizeAll()
		}
		copy(state, out[:3*n])
		lastLoss = out[3*n].Value().(float32)
		stepNum++
	}
	run() // compile
	firstLoss := lastLoss
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.ReportMetric(float64(b.N*benchBatch*benchSeq)/b.Elapsed().Seconds(), "tokens/s")
	b.StopTimer()
	if math.IsNaN(float64(lastLoss)) || (b.N >= 3 && !(lastLoss < firstLoss)) {
		b.Fatalf("training did not reduce the loss: %g -> %g", firstLoss, lastLoss)
	}
	b.Logf("loss %.4f -> %.4f after %d steps", firstLoss, lastLoss, stepNum)
}

// crossEntropy is -log softmax(logits)[target] per position, [B, T], computed as
// logsumexp - logit[target] with a Gather so no [B, T, V] one-hot is materialised.
func crossEntropy(logits, targets *Node) *Node {
	g := logits.Graph()
	dims := targets.Shape().Dimensions
	maxLogit := StopGradient(ReduceAndKeep(logits, ReduceMax, -1))
	lse := Add(Log(ReduceSum(Exp(Sub(logits, maxLogit)), -1)), Squeeze(maxLogit, -1))
	idx := Concatenate([]*Node{
		ExpandAxes(Iota(g, shapes.Make(dtypes.Int32, dims...), 0), -1),
		ExpandAxes(Iota(g, shapes.Make(dtypes.Int32, dims...), 1), -1),
		ExpandAxes(ConvertDType(targets, dtypes.Int32), -1),
	}, -1)
	return Sub(lse, Gather(logits, idx))
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
