package mamba

// Throughput benchmarks for docs/mamba.md on a ~10M-parameter Mamba (same shapes as
// testdata/bench_torch.py), 2,048 tokens per step as 8 x 256 or 1 x 2048. Compilation happens
// before the timer starts.
//
//	go test ./models/mamba/ -run '^$' -bench . -benchtime 3x

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
)

// benchConfig is 9,981,696 parameters: mamba-2.8b's layer shape scaled down (state 16, expand 2,
// conv 4, time_step_rank auto).
const benchConfig = `{"model_type":"mamba","vocab_size":8192,"hidden_size":256,"num_hidden_layers":18,
"state_size":16,"expand":2,"conv_kernel":4,"use_bias":false,"use_conv_bias":true,"time_step_rank":"auto"}`

// benchShapes are the (batch, sequence) shapes measured; each is 2,048 tokens.
var benchShapes = [][2]int{{8, 256}, {1, 2048}}

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
	return m, params
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
			m, params := benchModel(b)
			n := len(params)
			exec, err := NewExec(goldentest.Backend(b), func(inputs []*Node) *Node {
				return m.Logits(goldentest.ParamsFrom(m.Specs(), inputs), inputs[n], inputs[n+1], inputs[n+2])
			})
			if err != nil {
				b.Fatal(err)
			}
			tokens, _, positions, segments := benchTokens(m.VocabSize(), bt[0], bt[1])
			args := make([]any, 0, n+3)
			for _, p := range params {
				args = append(args, p)
			}
			args = append(args, tensors.FromValue(tokens), tensors.FromValue(positions), tensors.FromValue(segments))
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
			b.ReportMetric(float64(b.N*bt[0]*bt[1])/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkTrainStep: forward, mean cross-entropy over all positions, backward and an AdamW
// update of every parameter (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01), in one graph.
func BenchmarkTrainStep(b *testing.B) {
	for _, bt := range benchShapes {
		b.Run(fmt.Sprintf("B=%d,T=%d", bt[0], bt[1]), func(b *testing.B) { benchTrain(b, bt[0], bt[1]) })
	}
}

func benchTrain(b *testing.B, B, T int) {
	m, params := benchModel(b)
	n := len(params)
	const lr, beta1, beta2, eps, decay = 1e-3, 0.9, 0.999, 1e-8, 0.01
	exec, err := NewExec(goldentest.Backend(b), func(inputs []*Node) []*Node {
		theta, mom, vel := inputs[:n], inputs[n:2*n], inputs[2*n:3*n]
		step, tokens, targets := inputs[3*n], inputs[3*n+1], inputs[3*n+2]
		positions := Iota(tokens.Graph(), tokens.Shape(), 1)
		logits := m.Logits(goldentest.ParamsFrom(m.Specs(), theta), tokens, positions, OnesLike(tokens))
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
	tokens, targets, _, _ := benchTokens(m.VocabSize(), B, T)
	state := make([]*tensors.Tensor, 3*n)
	copy(state, params)
	for i, p := range params {
		state[n+i] = tensors.FromFlatDataAndDimensions(make([]float32, p.Size()), p.Shape().Dimensions...)
		state[2*n+i] = tensors.FromFlatDataAndDimensions(make([]float32, p.Size()), p.Shape().Dimensions...)
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
	b.ReportMetric(float64(b.N*B*T)/b.Elapsed().Seconds(), "tokens/s")
	b.StopTimer()
	if math.IsNaN(float64(lastLoss)) || (b.N >= 3 && !(lastLoss < firstLoss)) {
		b.Fatalf("training did not reduce the loss: %g -> %g", firstLoss, lastLoss)
	}
	b.Logf("loss %.4f -> %.4f after %d steps", firstLoss, lastLoss, stepNum)
}

// crossEntropy is logsumexp - logit[target] per position, [B, T]; the target logit is gathered
// so no [B, T, V] one-hot is materialised.
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
