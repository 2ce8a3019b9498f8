// Package trainingtest holds the checks the model families' tests run through the trainer: that
// training lowers the loss, that LoRA changes only its targets, that packed rows give the
// unpacked loss, and the families' benchmark model and train step. It sits above package
// training so that models/lm/lmtest, below it, does not import the trainer.
package trainingtest

// Training checks a family runs on its own choice of fixtures, through the trainer itself
// (training.Fit, training.Pack, training.Steps): what fine-tuning calls on a family's folder. They are not part of Conformance, which checks the lm.Architecture contract
// alone; a family calls the ones that apply to it.

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/training"
)

// PatternedExamples are n training examples a tiny model can learn: arithmetic progressions
// (steps 1, 2, 3 in turn) over the ids 3 to vocab-1, length tokens each, every token but the
// first a target.
func PatternedExamples(vocab, n, length int) []training.Example {
	var exs []training.Example
	for i := range n {
		ex := training.Example{Name: "pattern"}
		step := 1 + i%3
		for j := range length {
			ex.IDs = append(ex.IDs, int32(3+(i+j*step)%(vocab-3)))
			ex.Train = append(ex.Train, j > 0)
		}
		exs = append(exs, ex)
	}
	return exs
}

// TrainOptions are the options the training checks fit with, writing to out: 4 epochs at
// learning rate 1e-2 (1 warmup step), batches of 2 unpacked rows of at most 64 tokens, seed 3,
// shuffled.
func TrainOptions(out string) training.Options {
	return training.Options{Out: out, Epochs: 4, LR: 1e-2, WarmupSteps: 1, BatchSize: 2, Accumulation: 1,
		MaxLength: 64, Seed: 3, Order: training.OrderShuffled, NoPacking: true}
}

// CheckTrainingLowersLoss fine-tunes m fully with o (TrainOptions, possibly changed) on 8
// PatternedExamples of 16 tokens and checks that the last step's loss is below 0.8 times the
// first's and that the fine-tune o.Out holds loads back as the trained model (same hash).
func CheckTrainingLowersLoss(t *testing.T, m *lm.Model, o training.Options) {
	t.Helper()
	res, err := training.Fit(m, nil, prompt.Template{}, PatternedExamples(m.Arch().VocabSize(), 8, 16), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	first, last := res.Metrics[0].Loss, res.Metrics[len(res.Metrics)-1].Loss
	t.Logf("%d steps: loss %.4f -> %.4f", res.Steps, first, last)
	if !(last < 0.8*first) {
		t.Errorf("loss %.4f -> %.4f: not lowered", first, last)
	}
	back, err := lm.Load(o.Out, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash() != m.Hash() {
		t.Error("the saved fine-tune differs from the trained model")
	}
}

// CheckLoRATargets fine-tunes m with LoRA (rank 4, alpha 8) on Hugging Face's attention
// projection names (q_proj, k_proj, v_proj, o_proj), TrainOptions writing to a temporary folder,
// on 8 PatternedExamples of 16 tokens, and checks that the loss goes down and that the saved,
// merged result loads back with exactly those weights changed (every self_attn.*_proj.weight,
// and nothing else: norms, biases, the MLP and the embedding stay as they were).
func CheckLoRATargets(t *testing.T, m *lm.Model) {
	t.Helper()
	before := weightValues(m)
	o := TrainOptions(t.TempDir())
	o.LoRA = &training.LoRA{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}}
	res, err := training.Fit(m, nil, prompt.Template{}, PatternedExamples(m.Arch().VocabSize(), 8, 16), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	first, last := res.Metrics[0].Loss, res.Metrics[len(res.Metrics)-1].Loss
	t.Logf("LoRA %d steps: loss %.4f -> %.4f", res.Steps, first, last)
	if !(last < first) {
		t.Errorf("LoRA loss %.4f -> %.4f: not lowered", first, last)
	}
	back, err := lm.Load(o.Out, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := weightValues(back)
	for name, w := range before {
		changed := !slices.Equal(w, after[name])
		targeted := strings.HasSuffix(name, "_proj.weight") && strings.Contains(name, "self_attn.")
		if changed != targeted {
			t.Errorf("%s: changed=%v, targeted=%v", name, changed, targeted)
		}
	}
}

func weightValues(m *lm.Model) map[string][]float32 {
	out := map[string][]float32{}
	for k, v := range m.Weights() {
		out[k] = tensors.MustCopyFlatData[float32](v)
	}
	return out
}

// CheckPackedLossEqualsUnpacked packs exs into rows of width tokens with and without packing
// several items per row (training.Pack: segments, positions restarting) and checks that packing
// made fewer rows and that the mean loss of m's training step (training.Steps, one row at a
// time) is the same either way, within a relative tol.
func CheckPackedLossEqualsUnpacked(t *testing.T, m *lm.Model, exs []training.Example, width int, tol float64) {
	t.Helper()
	packed, err := training.Pack(exs, width, true)
	if err != nil {
		t.Fatal(err)
	}
	single, err := training.Pack(exs, width, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(packed) >= len(single) {
		t.Fatalf("packing made %d rows from %d items", len(packed), len(single))
	}
	steps, err := training.NewSteps(m.Backend(), training.FullSetup(m.Arch(), m.DType()))
	if err != nil {
		t.Fatal(err)
	}
	lossOf := func(rows []training.Row) float64 {
		var sum, n float64
		for _, r := range rows {
			s, c, err := steps.Loss(nil, m.WeightList(), training.MakeBatch([]training.Row{r}, 1, width))
			if err != nil {
				t.Fatal(err)
			}
			sum, n = sum+s, n+c
		}
		return sum / n
	}
	a, b := lossOf(packed), lossOf(single)
	t.Logf("packed %d rows loss %.6f, unpacked %d rows loss %.6f", len(packed), a, len(single), b)
	if math.Abs(a-b) > tol*math.Abs(b) {
		t.Errorf("packed loss %v != unpacked %v", a, b)
	}
}
