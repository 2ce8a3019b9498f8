package zoo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/training"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// ManifestFile is written beside every zoo model: how it was made.
const ManifestFile = "manifest.json"

// Manifest records how a zoo model was made.
type Manifest struct {
	Name          string            `json:"name"`
	RecipeVersion string            `json:"recipe_version"`
	RecipeHash    string            `json:"recipe_hash"`
	Seed          int64             `json:"seed"`
	Config        ModelConfig       `json:"model"`
	Train         TrainConfig       `json:"train"`
	World         WorldConfig       `json:"world"`
	Practice      PracticeConfig    `json:"practice"`
	Parameters    int               `json:"parameters"`
	DataHashes    map[string]string `json:"data_hashes"`
	Phases        []PhaseLog        `json:"phases"`
	WallSeconds   float64           `json:"wall_seconds"`
	Machine       string            `json:"machine"`
	Built         string            `json:"built"`
}

// Options tune a build without changing the recipe.
type Options struct {
	// Progress gets a line now and then (nil = silent).
	Progress func(string)
	// Bar, when set, receives the trainer's progress bars (with ETA).
	Bar io.Writer
	// WorkDir, when set, keeps each training phase's checkpoints and metrics.jsonl (with the
	// learning-curve probes) in WorkDir/PHASE-KEY, KEY a hash of the phase's data and
	// hyper-parameters: a build interrupted at any point continues from its last checkpoint
	// when run again with the same WorkDir, finished phases are not trained again, and a
	// changed recipe never resumes another's checkpoint. Empty: a temporary folder, removed
	// afterwards.
	WorkDir string
}

// Build makes zoo model name of cfg into dir (created; existing files are overwritten):
// tokenizer, random init, pre-training on the world's documents, instruction tuning, then the
// Hugging Face folder and manifest.json.
func Build(ctx context.Context, cfg *Config, name, dir string, opt Options) (*Manifest, error) {
	start := time.Now()
	mc, ok := cfg.Models[name]
	if !ok {
		return nil, fmt.Errorf("zoo: no model %q in the config (have %v)", name, cfg.Names())
	}
	hash, err := cfg.RecipeHash(name)
	if err != nil {
		return nil, err
	}
	tpl, err := prompt.Format(mc.PromptFormat)
	if err != nil {
		return nil, fmt.Errorf("zoo: models.%s.prompt_format: %w", name, err)
	}
	// An init folder is read before any work, so a wrong path fails at once.
	var initModel *lm.Model
	if mc.Reading != nil && mc.Reading.Init != "" {
		if initModel, err = lm.Load(cfg.path(mc.Reading.Init), lm.LoadOptions{}); err != nil {
			return nil, fmt.Errorf("zoo: models.%s.reading.init: %w", name, err)
		}
	}
	say := func(format string, args ...any) {
		if opt.Progress != nil {
			opt.Progress(name + ": " + fmt.Sprintf(format, args...))
		}
	}
	world := synthetic.NewWorld(synthetic.WorldOptions{Seed: cfg.Seed, Towns: cfg.World.Towns, ReadingPassages: cfg.World.ReadingPassages})
	family, _ := mc.Config["model_type"].(string)
	addBOS := family != "mamba" // Gemma's tokenizer adds BOS; GPT-NeoX-style (Mamba's) does not.
	tokFiles, err := tokenizerFiles(cfg, world, addBOS)
	if err != nil {
		return nil, err
	}
	// Load it as any model folder's tokenizer (tokenizer_config.json names the specials).
	tokDir, err := os.MkdirTemp("", "zoo-tokenizer-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tokDir)
	for f, data := range tokFiles {
		if err := os.WriteFile(filepath.Join(tokDir, f), data, 0o644); err != nil {
			return nil, err
		}
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		return nil, err
	}
	tokJSON := tokFiles["tokenizer.json"]
	hfConfig := map[string]any{}
	for k, v := range mc.Config {
		hfConfig[k] = v
	}
	hfConfig["vocab_size"] = tok.VocabSize()
	rawConfig, err := json.MarshalIndent(hfConfig, "", "  ")
	if err != nil {
		return nil, err
	}
	arch, err := lm.NewArchitecture(rawConfig)
	if err != nil {
		return nil, fmt.Errorf("zoo: models.%s.config: %w", name, err)
	}
	weights, params := initWeights(arch, uint64(cfg.Seed))
	model, err := lm.New(arch, rawConfig, weights, lm.LoadOptions{})
	if err != nil {
		return nil, err
	}
	initHash := ""
	if initModel != nil {
		if n, want := len(initModel.Weights()), len(model.Weights()); n != want {
			return nil, fmt.Errorf("zoo: models.%s.reading.init %s has %d tensors, this model %d: not the same architecture", name, initModel.Dir(), n, want)
		}
		// A folder with a tokenizer (a built zoo model) must have this recipe's; a checkpoint's
		// model folder has none, and the vocabulary size is all the shapes can check.
		if data, err := os.ReadFile(filepath.Join(initModel.Dir(), "tokenizer.json")); err == nil && !bytes.Equal(data, tokJSON) {
			return nil, fmt.Errorf("zoo: models.%s.reading.init %s was trained with another tokenizer than this recipe's", name, initModel.Dir())
		}
		if err := model.SetWeights(initModel.Weights()); err != nil {
			return nil, fmt.Errorf("zoo: models.%s.reading.init %s does not fit this model: %w", name, initModel.Dir(), err)
		}
		initHash = initModel.Hash()
		say("reading starts from %s (weights %s); pre-training skipped", initModel.Dir(), initHash)
	}
	say("%d parameters, vocabulary %d", params, tok.VocabSize())

	practice, err := practiceCurricula(cfg)
	if err != nil {
		return nil, err
	}
	practiceItems, err := practiceTrainExamples(tok, tpl, practice, addBOS)
	if err != nil {
		return nil, err
	}
	docs := &training.Encoder{Tok: tok, UseBOS: addBOS}
	answers := &training.Encoder{Tok: tok, Options: training.DataOptions{Template: tpl, Mask: training.MaskAnswers}, UseBOS: addBOS}
	// The practice documents and flashcards are in both phases: learnt first, then kept while
	// the model learns to answer questions about them.
	pre, err := pretrainExamples(docs, world)
	if err != nil {
		return nil, err
	}
	pre = append(pre, practiceItems...)
	inst, err := instructExamples(answers, world, practice, cfg.Seed)
	if err != nil {
		return nil, err
	}
	inst, dropped := fitting(inst, cfg.Train.SeqLen)
	inst = append(inst, practiceItems...)
	if initHash == "" {
		say("pre-training on %d sequences (%d tokens per epoch)", len(pre), countTokens(pre, false))
	}
	m := &Manifest{Name: name, RecipeVersion: mc.RecipeVersion(), RecipeHash: hash, Seed: cfg.Seed, Config: mc,
		Train: cfg.Train, World: cfg.World, Practice: cfg.Practice, Parameters: params,
		DataHashes: map[string]string{"tokenizer.json": sha(tokJSON), "pretrain": hashExamples(pre), "instruct": hashExamples(inst)},
		Machine:    fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())}
	if initHash != "" {
		m.DataHashes["init"] = initHash
	}
	var phases []phase
	if cfg.Train.PretrainEpochs > 0 && initHash == "" {
		phases = append(phases, phase{name: "pretrain", exs: pre, epochs: cfg.Train.PretrainEpochs, lr: cfg.Train.LR,
			warmup: cfg.Train.WarmupSteps, seqLen: cfg.Train.SeqLen})
	}
	if r := mc.Reading; r != nil {
		// Recipe v3: the epochs are laid out here in curriculum order and trained as one pass.
		epochs, err := readingData(tok, tpl, addBOS, r, cfg.Practice.Seed, inst)
		if err != nil {
			return nil, err
		}
		say("reading (recipe v3): %d examples over %d epochs (%d tokens, %d loss tokens)",
			len(epochs), r.Epochs, countTokens(epochs, false), countTokens(epochs, true))
		m.DataHashes["instruct"] = hashExamples(epochs)
		ph := phase{name: "reading", exs: epochs, epochs: 1, lr: r.LR, warmup: r.WarmupSteps, seqLen: r.SeqLen, keepOrder: true,
			probeEvery: r.ProbeEvery, schedule: r.Schedule, decayFraction: r.DecayFraction, batchSize: r.BatchSize, init: initHash}
		if r.ProbeEvery > 0 {
			prober, err := NewProber(tok, tpl, addBOS, arch.MaxLength(), cfg.Practice.Seed, practice, r.ProbeQuestions)
			if err != nil {
				return nil, err
			}
			ph.probe = prober.Probe
		}
		phases = append(phases, ph)
	} else if instructEpochs := v2InstructEpochs(cfg, mc); instructEpochs > 0 {
		// Instruction tuning sees the same examples every epoch plus a fresh reading set per
		// epoch: the epochs are laid out here and trained as one pass.
		var instEpochs []training.Example
		for e := range instructEpochs {
			reading, err := readingCurricula(cfg, e)
			if err != nil {
				return nil, err
			}
			rex, err := encodeAll(answers, fmt.Sprintf("reading example (epoch %d)", e+1), readingQuestions(reading, cfg.Seed+int64(e)))
			if err != nil {
				return nil, err
			}
			rex, cut := fitting(rex, cfg.Train.SeqLen)
			dropped += cut
			instEpochs = append(append(instEpochs, inst...), rex...)
		}
		say("instruction tuning: %d examples over %d epochs (%d tokens, %d loss tokens); %d examples longer than train.seq_len left out",
			len(instEpochs), instructEpochs, countTokens(instEpochs, false), countTokens(instEpochs, true), dropped)
		m.DataHashes["instruct"] = hashExamples(instEpochs)
		phases = append(phases, phase{name: "instruct", exs: instEpochs, epochs: 1, reportEpochs: instructEpochs, lr: cfg.Train.LR,
			warmup: cfg.Train.WarmupSteps, seqLen: cfg.Train.SeqLen})
	}
	for i, ph := range phases {
		log, err := runPhase(ctx, model, tok, tpl, cfg.Train, ph, cfg.Seed+int64(i), opt, say)
		if err != nil {
			return nil, err
		}
		m.Phases = append(m.Phases, log)
	}
	// Save first: it writes a fresh folder, then the tokenizer and generation files join it.
	if err := model.Save(dir, checkpoint.SaveOptions{}); err != nil {
		return nil, err
	}
	for name, data := range tokFiles {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data); err != nil {
			return nil, err
		}
	}
	gen := fmt.Sprintf(`{"bos_token_id": 2, "eos_token_id": %s, "pad_token_id": 0}`+"\n", eosIDs(tok, tpl))
	if err := atomicfile.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(gen)); err != nil {
		return nil, err
	}
	m.WallSeconds = math.Round(time.Since(start).Seconds()*10) / 10
	m.Built = time.Now().UTC().Format(time.RFC3339)
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n')); err != nil {
		return nil, err
	}
	return m, nil
}

// v2InstructEpochs is recipe v2's number of instruction epochs for a model.
func v2InstructEpochs(cfg *Config, mc ModelConfig) int {
	if mc.InstructEpochs != nil {
		return *mc.InstructEpochs
	}
	return cfg.Train.InstructEpochs
}

// tokenizerFiles trains the zoo tokenizer and returns tokenizer.json and tokenizer_config.json.
func tokenizerFiles(cfg *Config, world *synthetic.World, addBOS bool) (map[string][]byte, error) {
	corpus, err := TokenizerCorpus(cfg, world)
	if err != nil {
		return nil, err
	}
	tokJSON, err := tokenizer.Train(corpus, cfg.Tokenizer.VocabSize, tokenizer.TrainOptions{SpecialTokens: specialTokens})
	if err != nil {
		return nil, fmt.Errorf("zoo: tokenizer: %w", err)
	}
	tc := fmt.Sprintf(`{"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": %v, "model_max_length": %d}`+"\n",
		addBOS, cfg.Train.SeqLen*4)
	return map[string][]byte{"tokenizer.json": tokJSON, "tokenizer_config.json": []byte(tc)}, nil
}

// WriteTokenizer writes model name's tokenizer files into dir (a model folder).
func WriteTokenizer(cfg *Config, name, dir string) error {
	mc, ok := cfg.Models[name]
	if !ok {
		return fmt.Errorf("zoo: no model %q in the config (have %v)", name, cfg.Names())
	}
	world := synthetic.NewWorld(synthetic.WorldOptions{Seed: cfg.Seed, Towns: cfg.World.Towns, ReadingPassages: cfg.World.ReadingPassages})
	files, err := tokenizerFiles(cfg, world, mc.Config["model_type"] != "mamba")
	if err != nil {
		return err
	}
	for f, data := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, f), data); err != nil {
			return err
		}
	}
	return nil
}

// eosIDs is generation_config's eos_token_id: the tokenizer's EOS, and the prompt format's end
// of turn when the format has one and the vocabulary holds it (Gemma's <end_of_turn>, Llama 3's
// <|eot_id|>, ChatML's <|im_end|>), since chat turns end there.
func eosIDs(tok tokenizer.Tokenizer, tpl prompt.Template) string {
	eos := tok.Special().EOS
	if tpl.EndOfTurn != "" {
		if id, ok := tok.TokenID(tpl.EndOfTurn); ok && id != eos {
			return fmt.Sprintf("[%d, %d]", eos, id)
		}
	}
	return fmt.Sprint(eos)
}

// initWeights draws every parameter as Hugging Face initialises the family: N(0, 0.02)
// (initializer_range) for matrices and embeddings; Gemma's (1 + w) RMSNorm weights 0; Mamba's
// norms and skip D 1, A_log = log(1..N), conv and projection biases 0 and dt_proj's bias the
// inverse softplus of a dt drawn log-uniformly in [0.001, 0.1].
func initWeights(arch lm.Architecture, seed uint64) (map[string]*tensors.Tensor, int) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	out := map[string]*tensors.Tensor{}
	total := 0
	for _, spec := range arch.Specs() {
		n := 1
		for _, d := range spec.Shape {
			n *= d
		}
		total += n
		data := make([]float32, n)
		name := spec.Name
		for i := range data {
			switch {
			case arch.Family() == "mamba" && (strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, "norm_f.weight") || strings.HasSuffix(name, "mixer.D")):
				data[i] = 1
			case arch.Family() == "mamba" && strings.HasSuffix(name, "mixer.A_log"):
				data[i] = float32(math.Log(float64(i%spec.Shape[len(spec.Shape)-1] + 1)))
			case arch.Family() == "mamba" && strings.HasSuffix(name, "dt_proj.bias"):
				dt := math.Exp(rng.Float64()*(math.Log(0.1)-math.Log(0.001)) + math.Log(0.001))
				data[i] = float32(dt + math.Log(-math.Expm1(-dt)))
			case strings.HasSuffix(name, ".bias") || len(spec.Shape) == 1:
				data[i] = 0
			default:
				data[i] = float32(rng.NormFloat64() * 0.02)
			}
		}
		out[name] = tensors.FromFlatDataAndDimensions(data, spec.Shape...)
	}
	return out, total
}

// countTokens sums the examples' tokens, or only their loss targets.
func countTokens(exs []training.Example, targets bool) int {
	n := 0
	for _, ex := range exs {
		for i := range ex.IDs {
			if !targets || (i > 0 && ex.Train[i]) {
				n++
			}
		}
	}
	return n
}

// fitting keeps the examples that fit rows of seqLen tokens (a prompt is never cut: the model
// would learn to answer from half a passage) and counts the others.
func fitting(exs []training.Example, seqLen int) ([]training.Example, int) {
	kept := exs[:0:0]
	for _, ex := range exs {
		if len(ex.IDs) <= seqLen {
			kept = append(kept, ex)
		}
	}
	return kept, len(exs) - len(kept)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hashExamples(exs []training.Example) string {
	h := sha256.New()
	for _, ex := range exs {
		fmt.Fprintf(h, "%v:%v\n", ex.Train, ex.IDs)
		if ex.Weights != nil {
			fmt.Fprintf(h, "w%v\n", ex.Weights)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
