package gemma_test

// Gemma 2 and Gemma 3 through the shared runtime (lm.Load, Logits, Generate, Save) and the
// trainer: what evaluation, the CLI and fine-tuning actually call on such a folder. The checks
// are lmtest's, shared with the other families that have a Transformers counterpart.

import (
	"testing"

	"github.com/perpetual-ml/perpetual/training/trainingtest"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// Saving writes a folder Transformers loads unchanged: the tensors under their Hugging Face
// names (no lm_head.weight: the head is tied, as save_pretrained writes it), config.json with
// the same fields, and reloading gives the same model (hash) and logits.
func TestGemma23SaveReloadHFNames(t *testing.T) {
	for _, spec := range fixtures23 {
		t.Run(spec.Name(), func(t *testing.T) {
			f := loadFixture(t, spec)
			lmtest.CheckSaveReloadHFNames(t, f.Loaded, f.LoadModel(t, dtypes.Float32), "lm_head.weight")
		})
	}
}

// Packed training rows (several items per row, positions restarting, sliding windows by each
// item's positions) give the same loss as one item per row; the items are 16 tokens, longer than
// every fixture's window.
func TestGemma23PackedTrainingLossEqualsUnpacked(t *testing.T) {
	for _, name := range []string{"gemma2_sharded", "gemma3_pattern"} {
		t.Run(name, func(t *testing.T) {
			m := fixtureNamed(t, name).LoadModel(t, dtypes.Float32)
			trainingtest.CheckPackedLossEqualsUnpacked(t, m, trainingtest.PatternedExamples(m.Arch().VocabSize(), 6, 16), 64, 1e-5)
		})
	}
}

// Full fine-tuning through the existing trainer (parameter specs, AdamW, checkpoints) lowers the
// loss, and the saved result loads back as the trained model.
func TestGemma23TrainingLowersLoss(t *testing.T) {
	for _, name := range []string{"gemma2_sharded", "gemma3_pattern"} {
		t.Run(name, func(t *testing.T) {
			m := fixtureNamed(t, name).LoadModel(t, dtypes.Float32)
			o := trainingtest.TrainOptions(t.TempDir())
			o.NoPacking = name == "gemma2_sharded" // the other trains on packed rows
			trainingtest.CheckTrainingLowersLoss(t, m, o)
		})
	}
}

// LoRA on Hugging Face's attention projection names (q_proj, k_proj, v_proj, o_proj) trains,
// changes exactly those weights once merged (norms, q/k norms and the MLP stay), and saves
// loadable.
func TestGemma23LoRATargets(t *testing.T) {
	trainingtest.CheckLoRATargets(t, fixtureNamed(t, "gemma3_layer_types").LoadModel(t, dtypes.Float32))
}
