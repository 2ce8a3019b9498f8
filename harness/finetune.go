package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/harness/results"
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
	// Recipe is the model's fine-tuning recipe: the suite's training section with the model's
	// overrides (Suite.Recipe).
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
	Retention *results.Retention `json:"retention,omitempty"`
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

// checkFineTuner refuses, before any work, a suite with fine-tuned conditions and no fine-tuner
// (fine-tuned models are keyed by the fine-tuner's version, so none can be found without one),
// and a recipe the fine-tuner would refuse (now, not after the base and RAG cells ran).
func checkFineTuner(s *Suite, ft FineTuner) error {
	if !s.needsFineTuning() {
		return nil
	}
	if ft == nil {
		return fmt.Errorf("results: suite %s asks for fine-tuned conditions but no fine-tuner is available", s.Name)
	}
	if v, ok := ft.(RecipeValidator); ok {
		if err := v.ValidateRecipe(s.Training); err != nil {
			return fmt.Errorf("results: suite %s: training: %w", s.Name, err)
		}
		for _, m := range s.Models {
			if m.Training == nil {
				continue
			}
			if err := v.ValidateRecipe(s.Recipe(m)); err != nil {
				return fmt.Errorf("results: suite %s: model %s: training: %w", s.Name, m.Name, err)
			}
		}
	}
	return nil
}

// fineTuning is a fine-tuned model of a run: its folder and hash, and what its training
// reported (loss curve, retention).
type fineTuning struct {
	dir, hash string
	res       FineTuneResult
}

// fineTuningKey names a fine-tuning of a run: a model trained on a task with a seed.
type fineTuningKey struct {
	task  *preparedTask
	model *preparedModel
	seed  int64
}

// fineTuning returns model m fine-tuned on task t with seed, trained when its folder is missing,
// once per run: the first call keeps its loss curve and retention for results.json (see
// fineTuningReport), and is the fine-tuning's timed step (cached when nothing was trained).
func (r *runner) fineTuning(t *preparedTask, m *preparedModel, seed int64) (fineTuning, error) {
	k := fineTuningKey{t, m, seed}
	if ft, ok := r.fineTunings[k]; ok {
		return ft, nil
	}
	trained := r.rep.FineTuned
	dir, hash, res, err := r.fineTuned(t, m, seed)
	if err != nil {
		return fineTuning{}, err
	}
	r.watch.lap(TimedStep{Kind: StepFineTune, Task: t.Name, Model: m.Name, Seed: seed, Cached: r.rep.FineTuned == trained})
	if r.fineTunings == nil {
		r.fineTunings = map[fineTuningKey]fineTuning{}
	}
	r.fineTunings[k] = fineTuning{dir: dir, hash: hash, res: res}
	return r.fineTunings[k], nil
}

// fineTuningReport is the loss curves and retention of the plan's fine-tunings, in plan order
// (the order of a run with one lane, whichever lane trained them).
func (r *runner) fineTuningReport(plan []cellPlan) ([]results.LossPoint, []results.RetentionPoint) {
	var losses []results.LossPoint
	var retention []results.RetentionPoint
	seen := map[fineTuningKey]bool{}
	for _, c := range plan {
		k := fineTuningKey{c.task, c.model, c.seed}
		ft, ok := r.fineTunings[k]
		if !isFineTuned(c.cond) || !ok || seen[k] {
			continue
		}
		seen[k] = true
		name := c.model.Name
		if len(r.s.Seeds) > 1 {
			name = fmt.Sprintf("%s seed %d", c.model.Name, c.seed)
		}
		if ft.res.Retention != nil {
			retention = append(retention, results.RetentionPoint{Task: c.task.Name, Model: c.model.Name, Seed: c.seed, Retention: *ft.res.Retention})
		}
		for _, l := range ft.res.Loss {
			losses = append(losses, results.LossPoint{Model: name, Task: c.task.Name, Step: l.Step, Loss: l.Loss, ValLoss: l.ValLoss})
		}
	}
	return losses, retention
}

// fineTuned returns the fine-tuned model folder for (task, model, seed) under Work/finetuned,
// keyed by the model, the curriculum, the recipe, the prompt format, the seed, the fine-tuner's
// version and the model's code version (its gradients are the family's), training it if missing.
func (r *runner) fineTuned(t *preparedTask, m *preparedModel, seed int64) (dir, hash string, res FineTuneResult, err error) {
	recipe := r.s.Recipe(m.Model)
	key := keyOf("finetune", m.hash, t.hash, recipe, m.PromptFormat, seed, r.opt.FineTuner.Version(), m.code)
	dir = filepath.Join(r.opt.Work, "finetuned", fmt.Sprintf("%s-%s-s%d-%s", t.Name, m.Name, seed, key[:16]))
	lossPath := filepath.Join(dir, "harness-loss.json")
	if _, statErr := os.Stat(lossPath); statErr != nil {
		err = buildDir(dir, func(tmp string) error {
			res, err := r.opt.FineTuner.FineTune(r.ctx, FineTuneRequest{BaseModel: m.dir, Curriculum: t.dir, Out: tmp,
				PromptFormat: m.PromptFormat, Recipe: recipe, Seed: seed, Progress: r.opt.Progress})
			if err != nil {
				return fmt.Errorf("fine-tuning %s on %s (seed %d): %w", m.Name, t.Name, seed, err)
			}
			r.rep.FineTuned++
			return writeJSON(filepath.Join(tmp, "harness-loss.json"), res)
		})
		if err != nil {
			return "", "", res, err
		}
	}
	if err := readJSON(lossPath, &res); err != nil {
		return "", "", res, err
	}
	hash, err = r.hasher.Hash(dir)
	if err != nil {
		return "", "", res, err
	}
	return dir, hash, res, nil
}
