package llama

// The same golden checks through the shared runtime (lm.Load, Logits, Generate, Save) and the
// trainer: what evaluation, the CLI and fine-tuning actually call on a Llama or Qwen folder. The
// checks are lmtest's, shared with the other families that have a Transformers counterpart.

import (
	"testing"

	"github.com/perpetual-ml/perpetual/training/trainingtest"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// Saving writes a folder Transformers loads unchanged: the tensors under their Hugging Face
// names (lm_head.weight only when the head is untied, as save_pretrained writes tied models),
// config.json with the same fields, and reloading gives the same model (hash) and logits.
func TestSaveReloadHFNames(t *testing.T) {
	for _, spec := range fixtures {
		t.Run(spec.Name(), func(t *testing.T) {
			f := loadFixture(t, spec)
			var notSaved []string
			if f.model().cfg.TieWordEmbeddings {
				notSaved = append(notSaved, headName)
			}
			lmtest.CheckSaveReloadHFNames(t, f.Loaded, f.LoadModel(t, dtypes.Float32), notSaved...)
		})
	}
}

// Full fine-tuning through the existing trainer (parameter specs, AdamW, checkpoints) lowers the
// loss, and the saved result loads back as the trained model.
func TestTrainingLowersLoss(t *testing.T) {
	for _, name := range []string{"qwen3_qknorm", "qwen2_bias"} {
		t.Run(name, func(t *testing.T) {
			trainingtest.CheckTrainingLowersLoss(t, fixtureNamed(t, name).LoadModel(t, dtypes.Float32), trainingtest.TrainOptions(t.TempDir()))
		})
	}
}

// LoRA on Hugging Face's attention projection names (q_proj, k_proj, v_proj, o_proj) trains,
// changes exactly those weights once merged (biases and the MLP stay), and saves loadable.
func TestLoRATargets(t *testing.T) {
	trainingtest.CheckLoRATargets(t, fixtureNamed(t, "llama3_gqa").LoadModel(t, dtypes.Float32))
}
