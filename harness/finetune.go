package harness

import (
	"context"
	"io"
)

// FineTuneRequest asks for one fine-tuning run: a base model folder trained on a curriculum.
type FineTuneRequest struct {
	// BaseModel is the folder of the model to start from.
	BaseModel string
	// Curriculum is a curriculum folder (train.jsonl, validation.jsonl, ...).
	Curriculum string
	// Out is an empty folder to write the fine-tuned model into (config, weights, tokenizer),
	// loadable by lm.Load. The harness renames it into place when FineTune succeeds.
	Out string
	// PromptFormat is the models/prompt format the model is evaluated in ("" = none given).
	PromptFormat string
	// Recipe is the suite's training section.
	Recipe Recipe
	// Seed is the fine-tuning seed (data order, dropout, ...).
	Seed int64
	// Progress receives a progress bar (nil = none).
	Progress io.Writer
}

// LossStep is one logged training step.
type LossStep struct {
	Step    int      `json:"step"`
	Loss    float64  `json:"loss"`
	ValLoss *float64 `json:"val_loss,omitempty"`
}

// FineTuneResult is what a fine-tuning run reports besides the model folder.
type FineTuneResult struct {
	Loss []LossStep `json:"loss"`
}

// FineTuner fine-tunes models; the training package provides the real one (see cmd/perpetual).
type FineTuner interface {
	// Version identifies the training code and its defaults: it is part of the fine-tuned
	// model's cache key, so changing it retrains.
	Version() string
	FineTune(ctx context.Context, req FineTuneRequest) (*FineTuneResult, error)
}
