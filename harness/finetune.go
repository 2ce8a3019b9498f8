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
	// Retention, when the recipe asks for it, measures assistant behaviour on held-out general
	// instructions before and after the fine-tuning.
	Retention *Retention `json:"retention,omitempty"`
}

// Retention is assistant behaviour before and after a fine-tuning, on general instructions
// held out from every training set: the perplexity of the reference answers (lower is better)
// and the share of prompts answered with a greedy reply that ends (EOS) within the limit.
type Retention struct {
	Prompts          int     `json:"prompts"`
	PerplexityBefore float64 `json:"perplexity_before"`
	PerplexityAfter  float64 `json:"perplexity_after"`
	StopRateBefore   float64 `json:"stop_rate_before"`
	StopRateAfter    float64 `json:"stop_rate_after"`
	// SampleBefore and SampleAfter are the greedy answers to the first prompt.
	Prompt       string `json:"prompt"`
	SampleBefore string `json:"sample_before"`
	SampleAfter  string `json:"sample_after"`
}

// RetentionRow is one fine-tuning's Retention in results.json.
type RetentionRow struct {
	Task  string `json:"task"`
	Model string `json:"model"`
	Seed  int64  `json:"seed"`
	Retention
}

// RecipeValidator is implemented by fine-tuners that can check a suite's training recipe
// (unknown keys, impossible values) before Run does any work.
type RecipeValidator interface {
	ValidateRecipe(Recipe) error
}

// FineTuner fine-tunes models; the training package provides the real one (see cmd/perpetual).
type FineTuner interface {
	// Version identifies the training code and its defaults: it is part of the fine-tuned
	// model's cache key, so changing it retrains.
	Version() string
	FineTune(ctx context.Context, req FineTuneRequest) (*FineTuneResult, error)
}
