package training

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"

	_ "github.com/perpetual-ml/perpetual/models/gemma"
	_ "github.com/perpetual-ml/perpetual/models/mamba"
)

// The production loss and its gradients (Steps.Accumulate: TokenLoss on the architecture's
// logits, summed with the weights) against the independent PyTorch references of the model
// packages' golden fixtures (make_golden.py: autograd of the weighted mean cross-entropy),
// within the tolerances of the models' own golden loss tests.
func TestLossAndGradientsMatchReference(t *testing.T) {
	for _, c := range []struct {
		dir     string
		lossTol float64
	}{
		{"../models/gemma/testdata/mha", 1e-4},
		{"../models/gemma/testdata/gqa_sharded", 1e-4},
		{"../models/mamba/testdata/k4_bias_s16", 1e-5},
		{"../models/mamba/testdata/k2_nobias_s4", 1e-5},
		{"../models/mamba/testdata/k4_bf16", 1e-5},
	} {
		t.Run(filepath.Base(c.dir), func(t *testing.T) {
			var golden struct {
				Loss struct {
					Tokens, Targets []int32
					Weights         []float32
					Value           float64
					Grads           map[string][]float64
				}
			}
			raw, err := os.ReadFile(filepath.Join(c.dir, "golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &golden); err != nil {
				t.Fatal(err)
			}
			L := golden.Loss
			_, setup, state, steps := fullTraining(t, c.dir)
			grads, sum, count, err := steps.Accumulate(state.Frozen, state.Train, nil, oneRow(L.Tokens, L.Targets, L.Weights))
			if err != nil {
				t.Fatal(err)
			}
			if loss := sum / count; math.Abs(loss-L.Value) > c.lossTol*math.Abs(L.Value) {
				t.Errorf("loss %.7f, PyTorch %.7f", loss, L.Value)
			}
			index := map[string]int{}
			for i, tr := range setup.Train {
				index[tr.Name] = i
			}
			for name, want := range L.Grads {
				i, ok := index[name]
				if !ok {
					t.Fatalf("reference gradient of %s: not a trained parameter", name)
				}
				got := tensors.MustCopyFlatData[float32](grads[i])
				var diff, norm float64
				for j, w := range want {
					g := float64(got[j]) / count // the graph's gradient is of the sum
					diff += (g - w) * (g - w)
					norm += w * w
				}
				if rel := math.Sqrt(diff / norm); !(rel <= 1e-4) {
					t.Errorf("gradient of %s: relative error %.2e", name, rel)
				}
			}
		})
	}
}

// TokenLoss stays finite and exact where a naive log(sum(exp)) would overflow, and a target
// at any index (first, last) reads its own logit.
func TestTokenLossExtremeLogits(t *testing.T) {
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	logits := [][][]float32{{{1000, -1000, 999}, {-50, 80, 80}}}
	targets := [][]int32{{2, 0}}
	e, err := NewExec(be, TokenLoss)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(tensors.FromValue(logits), tensors.FromValue(targets))
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Value().([][]float32)[0]
	for p, row := range logits[0] {
		m := math.Inf(-1)
		for _, x := range row {
			m = math.Max(m, float64(x))
		}
		var s float64
		for _, x := range row {
			s += math.Exp(float64(x) - m)
		}
		want := m + math.Log(s) - float64(row[targets[0][p]])
		if math.Abs(float64(got[p])-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("position %d: loss %v, want %v", p, got[p], want)
		}
	}
}

// The loss and its gradient keep the logits and lm.TrainingLossLogits more float32 [B, T, V]
// tensors alive at their peak, as lm.EstimateMemory assumes: the graph is built (not run) and
// replayed in creation order (lmtest.GraphPeak), each tensor alive from the op that makes it to
// its last reader, the logits and their gradient kept (in a model they feed the head's backward
// pass).
func TestLossGraphPeak(t *testing.T) {
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const B, T, V = 2, 64, 1000
	g := NewGraph(be, "loss_peak")
	defer g.Finalize()
	logits := Parameter(g, "logits", shapes.Make(dtypes.Float32, B, T, V))
	targets := Parameter(g, "targets", shapes.Make(dtypes.Int32, B, T))
	weights := Parameter(g, "weights", shapes.Make(dtypes.Float32, B, T))
	grad := Gradient(ReduceAllSum(Mul(TokenLoss(logits, targets), weights)), logits)[0]
	// The logits are a parameter here; count them as the model's output they are.
	peak := lmtest.GraphPeak(g, logits, grad).Bytes + int64(B*T*V*4)
	units := float64(peak) / float64(B*T*V*4)
	if want := float64(1 + lm.TrainingLossLogits); math.Abs(units-want) > 0.05 {
		t.Errorf("peak of the loss and its gradient: %.3f logits-sized tensors, lm.EstimateMemory assumes %v", units, want)
	}
}

// Fractional per-token weights (recipe v3's answer weighting): the step's summed loss is the
// weighted sum of each target's cross-entropy, computed here on the host from the model's own
// logits, and its count is the sum of the weights.
func TestWeightedLoss(t *testing.T) {
	model, _, state, steps := fullTraining(t, "../models/gemma/testdata/mha")
	tokens := []int32{2, 7, 11, 5, 9, 3, 14, 6}
	targets := []int32{7, 11, 5, 9, 3, 14, 6, 0}
	weights := []float32{0, 1, 3, 0.5, 0, 3, 1, 0}
	sum, count, err := steps.Loss(state.Frozen, state.Train, oneRow(tokens, targets, weights))
	if err != nil {
		t.Fatal(err)
	}
	logits, err := model.Logits([][]int32{tokens})
	if err != nil {
		t.Fatal(err)
	}
	var want, wantCount float64
	for i, row := range logits[0] {
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, float64(x))
		}
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x) - mx)
		}
		nll := mx + math.Log(z) - float64(row[targets[i]])
		want += float64(weights[i]) * nll
		wantCount += float64(weights[i])
	}
	if math.Abs(sum-want) > 1e-4*math.Abs(want) || count != wantCount {
		t.Fatalf("weighted loss sum %.6f count %g, want %.6f and %g", sum, count, want, wantCount)
	}
}

// fullTraining loads the float32 model in dir with the full fine-tuning state and step graphs.
func fullTraining(t *testing.T, dir string) (*lm.Model, *Setup, *State, *Steps) {
	t.Helper()
	model, err := lm.Load(dir, lm.LoadOptions{DType: dtypes.Float32})
	if err != nil {
		t.Fatal(err)
	}
	setup, state, err := NewState(model, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := NewSteps(model.Backend(), setup)
	if err != nil {
		t.Fatal(err)
	}
	return model, setup, state, steps
}

// oneRow is a batch of one unpacked row (positions from 0, one segment).
func oneRow(tokens, targets []int32, weights []float32) Batch {
	T := len(tokens)
	b := Batch{B: 1, T: T, Tokens: tokens, Targets: targets, Weights: weights, Positions: make([]int32, T), Segments: make([]int32, T)}
	for i := range T {
		b.Positions[i], b.Segments[i] = int32(i), 1
	}
	return b
}

// An architecture's TrainingLogits (Gemma's, with hand-written gradients) computes the same
// values as its Logits: the accumulate graph's loss equals the evaluation graph's bit for bit.
func TestTrainingLogitsSameLoss(t *testing.T) {
	for _, dir := range []string{"../models/gemma/testdata/mha", "../models/gemma/testdata/gqa_sharded"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			model, _, state, steps := fullTraining(t, dir)
			if _, ok := model.Arch().(lm.TrainingLogits); !ok {
				t.Fatalf("%s: the architecture has no TrainingLogits", dir)
			}
			T := 12
			tokens, targets, weights := make([]int32, T), make([]int32, T), make([]float32, T)
			for i := range T {
				tokens[i], targets[i], weights[i] = int32(3*i+1)%int32(model.Arch().VocabSize()), int32(5*i+2)%int32(model.Arch().VocabSize()), 1
			}
			b := oneRow(tokens, targets, weights)
			_, sum, count, err := steps.Accumulate(state.Frozen, state.Train, nil, b)
			if err != nil {
				t.Fatal(err)
			}
			evalSum, evalCount, err := steps.Loss(state.Frozen, state.Train, b)
			if err != nil {
				t.Fatal(err)
			}
			if sum != evalSum || count != evalCount {
				t.Errorf("accumulate loss %v over %v, evaluation %v over %v", sum, count, evalSum, evalCount)
			}
		})
	}
}
