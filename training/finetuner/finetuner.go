// Package finetuner adapts the trainer to the harness's FineTuner interface, mapping a suite's
// training recipe onto training.Options.
package finetuner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/training"
)

// Version is part of fine-tuned models' cache keys: bump it when training code or defaults
// change results.
const Version = "training-v1"

// FineTuner is the harness.FineTuner backed by package training.
type FineTuner struct{}

// ValidateRecipe implements harness.RecipeValidator: the recipe maps onto valid trainer options.
func (FineTuner) ValidateRecipe(r harness.Recipe) error {
	o, err := Options(r, 1)
	if err != nil {
		return err
	}
	o.Out = "(checked)" // the harness chooses the folder
	return o.Validate()
}

// Version implements harness.FineTuner.
func (FineTuner) Version() string { return Version }

// Options maps a recipe to trainer options. batch_size is the effective batch: micro-batches of
// at most 2 rows (the paper's) times accumulation. Extra keys: warmup, weight_decay, clip,
// mask, order, packing (bool), lora_rank, lora_alpha, retention (the number of held-out general
// instructions on which FineTune measures retention, 0: none; see RetentionSet), paraphrases
// (the most paraphrase flashcards per fact to train on; absent: all the curriculum has).
// warmup, weight_decay and clip are taken as given (0: none); absent, they take the trainer's
// defaults (5 steps, 0.01 and 1.0).
func Options(r harness.Recipe, seed int64) (training.Options, error) {
	o := training.Options{Epochs: r.Epochs, LR: r.LearningRate, MaxLength: r.SeqLen, Seed: seed}
	if r.BatchSize > 0 {
		o.BatchSize = min(2, r.BatchSize)
		o.Accumulation = (r.BatchSize + o.BatchSize - 1) / o.BatchSize
	}
	num := func(k string) (float64, bool, error) {
		v, ok := r.Extra[k]
		if !ok {
			return 0, false, nil
		}
		switch x := v.(type) {
		case int:
			return float64(x), true, nil
		case float64:
			return x, true, nil
		}
		return 0, false, fmt.Errorf("training recipe: %s must be a number, got %v", k, v)
	}
	for k := range r.Extra {
		switch k {
		case "warmup", "weight_decay", "clip", "lora_rank", "lora_alpha", "mask", "order", "packing", "retention", "paraphrases":
		default:
			return o, fmt.Errorf("training recipe: unknown key %q", k)
		}
	}
	if v, ok, err := num("warmup"); err != nil {
		return o, err
	} else if ok {
		switch {
		case v < 0:
			return o, fmt.Errorf("training recipe: warmup must not be negative, got %v", v)
		case v == 0:
			o.WarmupSteps = -1 // no warm-up: training.Options reads 0 as "default"
		default:
			o.WarmupSteps = int(v)
		}
	}
	if v, ok, err := num("weight_decay"); err != nil {
		return o, err
	} else if ok {
		o.WeightDecay = new(v)
	}
	if v, ok, err := num("clip"); err != nil {
		return o, err
	} else if ok {
		o.ClipNorm = new(v)
	}
	if v, ok, err := num("lora_rank"); err != nil {
		return o, err
	} else if ok {
		alpha, _, err := num("lora_alpha")
		if err != nil {
			return o, err
		}
		if alpha == 0 {
			alpha = 2 * v
		}
		o.LoRA = &training.LoRA{Rank: int(v), Alpha: alpha, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj", "in_proj", "out_proj"}}
	}
	if v, ok, err := num("retention"); err != nil {
		return o, err
	} else if ok {
		if v < 0 || v != float64(int(v)) {
			return o, fmt.Errorf("training recipe: retention must be a whole number of prompts >= 0, got %v", v)
		}
		o.RetentionLimit = int(v)
	}
	if v, ok, err := num("paraphrases"); err != nil {
		return o, err
	} else if ok {
		if v < 0 || v != float64(int(v)) {
			return o, fmt.Errorf("training recipe: paraphrases must be a whole number of flashcards per fact >= 0, got %v", v)
		}
		o.Paraphrases = new(int(v))
	}
	if s, ok := r.Extra["mask"].(string); ok {
		o.Mask = s
	}
	if s, ok := r.Extra["order"].(string); ok {
		o.Order = s
	}
	if b, ok := r.Extra["packing"].(bool); ok {
		o.NoPacking = !b
	}
	return o, nil
}

// retentionWorldSeed draws the retention set's world: no training set of the project uses it
// (the zoo's world is zoo/config.yaml's seed, 1; random stand-ins tokenise the world of their
// seed), so its instructions are general requests about places the model was never taught.
const retentionWorldSeed = 4242

// RetentionSet is n general instructions held out from every training set: the closed-book and
// reading (with a passage) Alpaca pairs of a synthetic world of its own seed, in a fixed order.
func RetentionSet(n int) []training.ReplayRecord {
	w := synthetic.NewWorld(synthetic.WorldOptions{Seed: retentionWorldSeed, Towns: 8, ReadingPassages: 8})
	var out []training.ReplayRecord
	for _, p := range w.Pairs[:min(n, len(w.Pairs))] {
		out = append(out, training.ReplayRecord{Instruction: p.Instruction, Input: p.Input, Output: p.Output})
	}
	return out
}

// FineTune implements harness.FineTuner: it trains into req.Out and drops the checkpoint
// (optimizer state) afterwards, keeping the model, metrics.jsonl and retention.json.
func (FineTuner) FineTune(ctx context.Context, req harness.FineTuneRequest) (*harness.FineTuneResult, error) {
	o, err := Options(req.Recipe, req.Seed)
	if err != nil {
		return nil, err
	}
	o.Out, o.Progress, o.Context = req.Out, req.Progress, ctx
	var set []training.ReplayRecord
	if o.RetentionLimit > 0 {
		set = RetentionSet(o.RetentionLimit)
		tmp, err := os.MkdirTemp("", "retention-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		o.RetentionFile = filepath.Join(tmp, "retention.jsonl")
		if err := training.WriteReplay(o.RetentionFile, set); err != nil {
			return nil, err
		}
	}
	res, err := training.RunFolders(req.BaseModel, req.Curriculum, req.PromptFormat, o)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(req.Out, "checkpoint")); err != nil {
		return nil, err
	}
	out := &harness.FineTuneResult{}
	if r := res.Retention; r != nil {
		out.Retention = &results.Retention{Prompts: len(set), PerplexityBefore: r.Before.Perplexity, PerplexityAfter: r.After.Perplexity,
			StopRateBefore: r.Before.StopRate, StopRateAfter: r.After.StopRate, Prompt: set[0].Instruction,
			SampleBefore: r.Before.Sample, SampleAfter: r.After.Sample}
	}
	for _, m := range res.Metrics {
		out.Loss = append(out.Loss, harness.LossStep{Step: m.Step, Loss: m.Loss, ValLoss: m.ValLoss})
	}
	return out, nil
}
