// Package finetuner adapts the trainer to the harness's FineTuner interface, mapping a suite's
// training recipe onto training.Options.
package finetuner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/training"
)

// Version is part of fine-tuned models' cache keys: bump it when training code or defaults
// change results.
const Version = "training-v1"

// FineTuner is the harness.FineTuner backed by package training.
type FineTuner struct{}

// Version implements harness.FineTuner.
func (FineTuner) Version() string { return Version }

// Options maps a recipe to trainer options. batch_size is the effective batch: micro-batches of
// at most 2 rows (the paper's) times accumulation. Extra keys: warmup, weight_decay, clip,
// mask, order, packing (bool), lora_rank, lora_alpha. warmup, weight_decay and clip are taken as
// given (0: none); absent, they take the trainer's defaults (5 steps, 0.01 and 1.0).
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
		case "warmup", "weight_decay", "clip", "lora_rank", "lora_alpha", "mask", "order", "packing":
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

// FineTune implements harness.FineTuner: it trains into req.Out and drops the checkpoint
// (optimizer state) afterwards, keeping the model, metrics.jsonl and retention.json.
func (FineTuner) FineTune(ctx context.Context, req harness.FineTuneRequest) (*harness.FineTuneResult, error) {
	o, err := Options(req.Recipe, req.Seed)
	if err != nil {
		return nil, err
	}
	o.Out, o.Progress, o.Context = req.Out, req.Progress, ctx
	res, err := training.RunFolders(req.BaseModel, req.Curriculum, req.PromptFormat, o)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(req.Out, "checkpoint")); err != nil {
		return nil, err
	}
	out := &harness.FineTuneResult{}
	for _, m := range res.Metrics {
		out.Loss = append(out.Loss, harness.LossStep{Step: m.Step, Loss: m.Loss, ValLoss: m.ValLoss})
	}
	return out, nil
}
