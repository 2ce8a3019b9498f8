// Package zoo makes the miniature instruct-tuned models of the embedded default (issue 9): a
// byte-level BPE tokenizer trained on the project's own synthetic world, then a tiny Gemma and a
// tiny Mamba initialised at random, "pre-trained" on the world's documents and "instruct-tuned"
// on Alpaca-format questions (closed-book answers, reading comprehension with
// passages, and multiple-choice questions answered with a letter or the answer text, rendered
// exactly as the evaluation prompts them, so the letters formulation and RAG mean something).
//
// Every size and the whole recipe live in config.yaml (embedded). The recipe is deterministic
// for a seed on the Go backend. Built models are Hugging Face folders (config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json) plus
// manifest.json (seed, recipe hash, data hashes, steps, losses, wall time). Checkpoints committed
// under checkpoints/ are embedded and copied out by Ensure when their recipe hash matches, so
// `make results` does not train.
//
// Training is the project's trainer (training.Fit). Besides the world, the models learn
// practice knowledge bases (synthetic.Options.Practice: the test bases' kinds of facts about
// other entities) the way the harness's fine-tuner teaches a curriculum, then answer their
// questions closed book and, on fresh bases, from passages: the skills the experiment measures.
package zoo

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

//go:embed config.yaml
var configYAML []byte

// Config is config.yaml: the world, the tokenizer, the training recipe and the models.
type Config struct {
	Seed      int64                  `yaml:"seed" json:"seed"`
	World     WorldConfig            `yaml:"world" json:"world"`
	Practice  PracticeConfig         `yaml:"practice" json:"practice"`
	Tokenizer TokenizerConfig        `yaml:"tokenizer" json:"tokenizer"`
	Train     TrainConfig            `yaml:"train" json:"train"`
	Models    map[string]ModelConfig `yaml:"models" json:"models"`

	// dir is the config file's folder: relative paths in the config (reading.init) are resolved
	// against it.
	dir string
}

// WorldConfig sizes the synthetic pre-training world (see synthetic.WorldOptions).
type WorldConfig struct {
	Towns           int `yaml:"towns" json:"towns"`
	ReadingPassages int `yaml:"reading_passages" json:"reading_passages"`
}

// PracticeConfig sizes the practice knowledge bases: one per synthetic task (products, research,
// code), generated with synthetic.Options.Practice so that none of their entities can be a test
// knowledge base's. The models learn them the way the harness's fine-tuner teaches a test
// curriculum (documents and flashcards), then answer their test questions closed book and from
// retrieved passages: the skills the conditions of the experiment measure, on other facts.
type PracticeConfig struct {
	Seed          int64 `yaml:"seed" json:"seed"`
	Chunks        int   `yaml:"chunks" json:"chunks"`
	FactsPerChunk int   `yaml:"facts_per_chunk" json:"facts_per_chunk"`
}

// TokenizerConfig sizes the tokenizer.
type TokenizerConfig struct {
	VocabSize int `yaml:"vocab_size" json:"vocab_size"`
}

// TrainConfig is the training recipe shared by both phases.
type TrainConfig struct {
	SeqLen      int     `yaml:"seq_len" json:"seq_len"`
	BatchSize   int     `yaml:"batch_size" json:"batch_size"`
	LR          float64 `yaml:"lr" json:"lr"`
	WarmupSteps int     `yaml:"warmup_steps" json:"warmup_steps"`
	// WeightDecay and Clip are used as given: 0 means no decay, no clipping.
	WeightDecay    float64 `yaml:"weight_decay" json:"weight_decay"`
	Clip           float64 `yaml:"clip" json:"clip"`
	PretrainEpochs int     `yaml:"pretrain_epochs" json:"pretrain_epochs"`
	InstructEpochs int     `yaml:"instruct_epochs" json:"instruct_epochs"`
}

// ModelConfig is one zoo model: its prompt format (models/prompt) and its Hugging Face
// config.json without vocab_size (the tokenizer's size is filled in).
type ModelConfig struct {
	PromptFormat string `yaml:"prompt_format" json:"prompt_format"`
	// InstructEpochs overrides train.instruct_epochs for this model (slower families get fewer
	// to keep `make zoo` in minutes).
	InstructEpochs *int `yaml:"instruct_epochs,omitempty" json:"instruct_epochs,omitempty"`
	// Reading, when set, builds the model by recipe v3 (reading.go): drills and reading
	// conversations instead of v2's instruction tuning. Models without it are built by v2,
	// and their recipe hashes are unchanged by v3's existence.
	Reading *ReadingConfig `yaml:"reading,omitempty" json:"reading,omitempty"`
	Config  map[string]any `yaml:"config" json:"config"`
}

// DefaultConfig returns the embedded config.yaml.
func DefaultConfig() (*Config, error) { return ParseConfig(configYAML, "zoo/config.yaml") }

// ParseConfig reads a zoo config; file names the source in errors.
func ParseConfig(data []byte, file string) (*Config, error) {
	var c Config
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	c.dir = filepath.Dir(file)
	return &c, nil
}

func (c *Config) check() error {
	switch {
	case c.World.Towns < 4:
		return fmt.Errorf("world.towns must be at least 4, got %d", c.World.Towns)
	case c.World.ReadingPassages < 1:
		return fmt.Errorf("world.reading_passages must be positive, got %d", c.World.ReadingPassages)
	case c.Practice.Chunks < 0 || c.Practice.FactsPerChunk < 0:
		return fmt.Errorf("practice.chunks and practice.facts_per_chunk must not be negative")
	case c.Tokenizer.VocabSize < 256+len(specialTokens):
		return fmt.Errorf("tokenizer.vocab_size must be at least %d, got %d", 256+len(specialTokens), c.Tokenizer.VocabSize)
	case c.Train.SeqLen < 16:
		return fmt.Errorf("train.seq_len must be at least 16, got %d", c.Train.SeqLen)
	case c.Train.BatchSize < 1:
		return fmt.Errorf("train.batch_size must be positive, got %d", c.Train.BatchSize)
	case !(c.Train.LR > 0):
		return fmt.Errorf("train.lr must be positive, got %g", c.Train.LR)
	case !(c.Train.WeightDecay >= 0) || !(c.Train.Clip >= 0):
		return fmt.Errorf("train.weight_decay and train.clip must not be negative (0 means none), got %g and %g", c.Train.WeightDecay, c.Train.Clip)
	case c.Train.PretrainEpochs < 0 || c.Train.InstructEpochs < 0:
		return fmt.Errorf("train epochs must not be negative")
	case len(c.Models) == 0:
		return fmt.Errorf("models: none given")
	}
	for name, m := range c.Models {
		if m.PromptFormat == "" {
			return fmt.Errorf("models.%s.prompt_format is required", name)
		}
		if m.Config["model_type"] == nil {
			return fmt.Errorf("models.%s.config.model_type is required", name)
		}
		if m.Reading != nil {
			if err := m.Reading.check(); err != nil {
				return fmt.Errorf("models.%s.%w", name, err)
			}
		}
	}
	return nil
}

// path resolves a path written in the config: relative ones against the config file's folder.
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Names lists the models of the config, sorted.
func (c *Config) Names() []string {
	var out []string
	for n := range c.Models {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// RecipeHash identifies what building model name does: the shared sections and that model's
// entry (JSON with sorted keys, so YAML formatting does not matter), plus the recipe version.
func (c *Config) RecipeHash(name string) (string, error) {
	m, ok := c.Models[name]
	if !ok {
		return "", fmt.Errorf("zoo: no model %q (have %v)", name, c.Names())
	}
	data, err := json.Marshal(struct {
		Version   string
		Seed      int64
		World     WorldConfig
		Practice  PracticeConfig
		Tokenizer TokenizerConfig
		Train     TrainConfig
		Model     ModelConfig
	}{m.RecipeVersion(), c.Seed, c.World, c.Practice, c.Tokenizer, c.Train, m})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16], nil
}

// RecipeVersion changes whenever the code of recipe v2 (models without a reading section)
// changes what it builds; RecipeVersionReading likewise for recipe v3.
const (
	RecipeVersion        = "zoo-v2"
	RecipeVersionReading = "zoo-v3"
)

// RecipeVersion is the recipe that builds this model: v3 with a reading section, else v2.
func (m ModelConfig) RecipeVersion() string {
	if m.Reading != nil {
		return RecipeVersionReading
	}
	return RecipeVersion
}
