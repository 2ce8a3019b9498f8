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

// Conformance: lm.Load and the runtime's batched, padded Logits reproduce the reference; bf16
// compute matches PyTorch's bf16 and float16 stays close to float32.
func TestGemma23LMLoadGoldenLogits(t *testing.T) {
	for _, spec := range fixtures23 {
		t.Run(spec.name(), func(t *testing.T) {
			f := loadFixture(t, spec)
			got, err := loadLM(t, f, dtypes.Float32).Logits(f.golden.Sequences)
			if err != nil {
				t.Fatal(err)
			}
			for i := range f.golden.Sequences {
				rel, maxAbs := goldentest.Compare(goldentest.Flatten(got[i]), f.golden.Logits[i])
				if rel > f.tolerance() || math.IsNaN(rel) {
					t.Errorf("sequence %d: relative error %.2e (max abs %.2e)", i, rel, maxAbs)
				}
			}
		})
	}
	t.Run("gemma3_pattern in float16", func(t *testing.T) {
		// float16 keeps 11 bits of mantissa: a few 1e-3 of relative error against float32.
		f := fixtureNamed(t, "gemma3_pattern")
		got, err := loadLM(t, f, dtypes.Float16).Logits(f.golden.Sequences)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.golden.Sequences {
			rel, _ := goldentest.Compare(goldentest.Flatten(got[i]), f.golden.Logits[i])
			t.Logf("sequence %d: float16 vs float32 reference %.2e", i, rel)
			if rel > 1e-2 || math.IsNaN(rel) {
				t.Errorf("sequence %d: relative error %.2e", i, rel)
			}
		}
	})
	t.Run("gemma2_bf16 in bfloat16", func(t *testing.T) {
		f := fixtureNamed(t, "gemma2_bf16")
		got, err := loadLM(t, f, dtypes.BFloat16).Logits(f.golden.Sequences)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.golden.Sequences {
			if rel, _ := goldentest.Compare(goldentest.Flatten(got[i]), f.golden.LogitsBF16[i]); rel > f.BFloat16Tolerance || math.IsNaN(rel) {
				t.Errorf("sequence %d: relative error %.2e vs PyTorch bf16", i, rel)
			}
		}
	})
}

// Conformance: greedy generation through the KV cache (Step), here well past the sliding window,
// equals argmax decoding by recomputing the whole sequence with Logits each step.
func TestGemma23LMGenerateMatchesRecomputation(t *testing.T) {
	for _, spec := range fixtures23 {
		t.Run(spec.name(), func(t *testing.T) {
			f := loadFixture(t, spec)
			m := loadLM(t, f, dtypes.Float32)
			prompt := f.golden.Sequences[1][:7]
			const n = 12 // 19 tokens in all: three times the largest window
			out, err := m.Generate(prompt, lm.GenerateOptions{MaxNewTokens: n})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != n {
				t.Fatalf("generated %d tokens, want %d", len(out), n)
			}
			seq := slices.Clone(prompt)
			for step := range out {
				logits, err := m.Logits([][]int32{seq})
				if err != nil {
					t.Fatal(err)
				}
				last := logits[0][len(seq)-1]
				arg := 0
				for j := range last {
					if last[j] > last[arg] {
						arg = j
					}
				}
				if int32(arg) != out[step] {
					t.Fatalf("step %d generated %d, recomputation's argmax is %d", step, out[step], arg)
				}
				seq = append(seq, int32(arg))
			}
		})
	}
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
