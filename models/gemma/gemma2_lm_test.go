package gemma_test

// Gemma 2 and Gemma 3 through the shared runtime (lm.Load, Logits, Generate, Save) and the
// trainer: what evaluation, the CLI and fine-tuning actually call on such a folder.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/training"
)

func loadLM(t *testing.T, f *fixture, dtype dtypes.DType) *lm.Model {
	t.Helper()
	m, err := lm.Load(f.Dir, lm.LoadOptions{DType: dtype})
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch().Family() != f.model.Family() {
		t.Fatalf("loaded family %q, want %q", m.Arch().Family(), f.model.Family())
	}
	return m
}

// savedNames lists the tensor names of a saved folder with the independent test reader.
func savedNames(t *testing.T, dir string) []string {
	t.Helper()
	w, err := goldentest.ReadWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Saving writes a folder Transformers loads unchanged: the tensors under their Hugging Face
// names (no lm_head.weight: the head is tied, as save_pretrained writes it), config.json with
// the same fields, and reloading gives the same model (hash) and logits.
func TestGemma23SaveReloadHFNames(t *testing.T) {
	for _, spec := range fixtures23 {
		t.Run(spec.name(), func(t *testing.T) {
			f := loadFixture(t, spec)
			m := loadLM(t, f, dtypes.Float32)
			dir := filepath.Join(t.TempDir(), "saved")
			if err := m.Save(dir, checkpoint.SaveOptions{MaxShardSize: 40000}); err != nil { // several shards
				t.Fatal(err)
			}
			var want []string
			for n := range f.weights {
				if n != "lm_head.weight" {
					want = append(want, n)
				}
			}
			sort.Strings(want)
			if got := savedNames(t, dir); !slices.Equal(got, want) {
				t.Errorf("saved tensors %v, want the reference's %v", got, want)
			}
			saved, err := os.ReadFile(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var a, b map[string]any
			if err := json.Unmarshal(saved, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(f.config, &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("saved config.json differs:\n%s\nwant\n%s", saved, f.config)
			}
			back, err := lm.Load(dir, lm.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if back.Hash() != m.Hash() {
				t.Error("reloaded model hashes differently")
			}
			got, err := back.Logits(f.golden.Sequences[:2])
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if rel, _ := goldentest.Compare(goldentest.Flatten(got[i]), f.golden.Logits[i]); rel > f.tolerance() {
					t.Errorf("reloaded logits of sequence %d: relative error %.2e", i, rel)
				}
			}
		})
	}
}

// patterned are training examples a tiny model can learn: arithmetic progressions over the
// vocabulary, every token a target; 16 tokens, longer than every fixture's window.
func patterned(vocab, n, length int) []training.Example {
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

func trainOptions(out string) training.Options {
	return training.Options{Out: out, Epochs: 4, LR: 1e-2, WarmupSteps: 1, BatchSize: 2, Accumulation: 1,
		MaxLength: 64, Seed: 3, Order: training.OrderShuffled, NoPacking: true}
}

func weightValues(m *lm.Model) map[string][]float32 {
	out := map[string][]float32{}
	for k, v := range m.Weights() {
		out[k] = tensors.MustCopyFlatData[float32](v)
	}
	return out
}

// Packed training rows (several items per row, positions restarting, sliding windows by each
// item's positions) give the same loss as one item per row.
func TestGemma23PackedTrainingLossEqualsUnpacked(t *testing.T) {
	for _, name := range []string{"gemma2_sharded", "gemma3_pattern"} {
		t.Run(name, func(t *testing.T) {
			f := fixtureNamed(t, name)
			m := loadLM(t, f, dtypes.Float32)
			exs := patterned(m.Arch().VocabSize(), 6, 16)
			packed, err := training.Pack(exs, 64, true)
			if err != nil {
				t.Fatal(err)
			}
			single, err := training.Pack(exs, 64, false)
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
					s, c, err := steps.Loss(nil, m.WeightList(), training.MakeBatch([]training.Row{r}, 1, 64))
					if err != nil {
						t.Fatal(err)
					}
					sum, n = sum+s, n+c
				}
				return sum / n
			}
			a, b := lossOf(packed), lossOf(single)
			t.Logf("packed %d rows loss %.6f, unpacked %d rows loss %.6f", len(packed), a, len(single), b)
			if math.Abs(a-b) > 1e-5*math.Abs(b) {
				t.Errorf("packed loss %v != unpacked %v", a, b)
			}
		})
	}
}

// Full fine-tuning through the existing trainer (parameter specs, AdamW, checkpoints) lowers the
// loss, and the saved result loads back as the trained model.
func TestGemma23TrainingLowersLoss(t *testing.T) {
	for _, name := range []string{"gemma2_sharded", "gemma3_pattern"} {
		t.Run(name, func(t *testing.T) {
			f := fixtureNamed(t, name)
			m := loadLM(t, f, dtypes.Float32)
			o := trainOptions(t.TempDir())
			o.NoPacking = name == "gemma2_sharded" // the other trains on packed rows
			res, err := training.Fit(m, nil, prompt.Template{}, patterned(m.Arch().VocabSize(), 8, 16), nil, o)
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
		})
	}
}

// LoRA on Hugging Face's attention projection names (q_proj, k_proj, v_proj, o_proj) trains,
// changes exactly those weights once merged (norms, q/k norms and the MLP stay), and saves
// loadable.
func TestGemma23LoRATargets(t *testing.T) {
	f := fixtureNamed(t, "gemma3_layer_types")
	m := loadLM(t, f, dtypes.Float32)
	before := weightValues(m)
	o := trainOptions(t.TempDir())
	o.LoRA = &training.LoRA{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}}
	res, err := training.Fit(m, nil, prompt.Template{}, patterned(m.Arch().VocabSize(), 8, 16), nil, o)
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
