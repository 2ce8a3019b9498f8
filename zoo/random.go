package zoo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// RandomModel writes an untrained model of the given Hugging Face config into dir, initialised
// exactly as Build initialises a zoo model (initWeights, seeded), with a byte-level BPE
// tokenizer of the config's vocab_size trained on a synthetic world's documents (no task's
// facts) and the zoo's special tokens. It is the stand-in model of tests (package zootest) and
// the starting point of experiments; the folder is reproducible byte for byte.
func RandomModel(dir string, config map[string]any, seed uint64) error {
	vocab, ok := config["vocab_size"].(int)
	if !ok || vocab < 256+len(specialTokens) {
		return fmt.Errorf("zoo: random model: vocab_size must be an int >= %d", 256+len(specialTokens))
	}
	world := synthetic.NewWorld(synthetic.WorldOptions{Seed: int64(seed), Towns: 40, ReadingPassages: 20})
	tokJSON, err := tokenizer.Train(world.Docs, vocab, tokenizer.TrainOptions{SpecialTokens: specialTokens})
	if err != nil {
		return fmt.Errorf("zoo: random model: tokenizer: %w", err)
	}
	rawConfig, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	arch, err := lm.NewArchitecture(rawConfig)
	if err != nil {
		return err
	}
	weights, _ := initWeights(arch, seed)
	m, err := lm.New(arch, rawConfig, weights, lm.LoadOptions{})
	if err != nil {
		return err
	}
	if err := m.Save(dir, checkpoint.SaveOptions{}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tokJSON, 0o644); err != nil {
		return err
	}
	// Gemma's tokenizer adds BOS; GPT-NeoX-style tokenizers (Mamba's) do not.
	tc := fmt.Sprintf(`{"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": %v}`,
		arch.Family() != "mamba")
	return os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc+"\n"), 0o644)
}
