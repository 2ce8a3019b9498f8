package harness

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/rag"
)

// CellRecord is one evaluated cell (cell.json in its cache folder): a task, a model and a
// condition (and, for fine-tuned conditions, a seed), evaluated in every formulation.
type CellRecord struct {
	Key       string `json:"key"`
	Task      string `json:"task"`
	Model     string `json:"model"`
	Condition string `json:"condition"`
	// Seed is the fine-tuning seed (0 for base conditions).
	Seed      int64  `json:"seed,omitempty"`
	ModelHash string `json:"model_hash"`
	// ModelDir is the evaluated model's folder (the fine-tuned one for fine-tuned conditions);
	// ChatTemplate, Index and K are how it was prompted (Index is the rag index, "" without RAG).
	ModelDir     string `json:"model_dir"`
	ChatTemplate string `json:"chat_template,omitempty"`
	Index        string `json:"index,omitempty"`
	K            int    `json:"k,omitempty"`
	// TaskOptions and Encoding are the rendering and encoding options the cell was evaluated
	// with (absent: the defaults); MaxLength and AddBOS are what the encoding resolved to.
	TaskOptions evaluation.TaskOptions     `json:"task_options,omitzero"`
	Encoding    evaluation.EncodingOptions `json:"encoding,omitzero"`
	MaxLength   int                        `json:"max_length,omitempty"`
	AddBOS      bool                       `json:"add_bos_token,omitempty"`
	// Formulations holds each formulation's outcome, by formulation name.
	Formulations map[string]*FormulationRecord `json:"formulations"`
	// dir is the cell's cache folder (samples files).
	dir string
}

// FormulationRecord is the outcome of one formulation in a cell.
type FormulationRecord struct {
	// TaskName is the evaluation task's name (samples file: evaluation.SamplesFile(TaskName)).
	TaskName string            `json:"task_name"`
	Extras   evaluation.Extras `json:"extras"`
	// VsBase compares acc (recall: exact match) with the base cell on all questions and per kind
	// (absent for base).
	VsBase       *evaluation.Comparison           `json:"vs_base,omitempty"`
	VsBaseByKind map[string]evaluation.Comparison `json:"vs_base_by_kind,omitempty"`
	// ContainsVsBase and ContainsVsBaseByKind compare recall's contains score the same way
	// (recall only).
	ContainsVsBase       *evaluation.Comparison           `json:"contains_vs_base,omitempty"`
	ContainsVsBaseByKind map[string]evaluation.Comparison `json:"contains_vs_base_by_kind,omitempty"`
	// Predicted counts the predicted choice indexes (letter bias: index 0 is "A"; none for
	// recall, which predicts no choice).
	Predicted []int `json:"predicted"`
}

// cell evaluates one cell, or reads it back from the cell cache, in steps: the model it
// evaluates (the suite's, or its fine-tuning for the cell's seed, trained if missing), its key,
// the cache, the model in memory, the retriever, each formulation evaluated and compared with
// the base cell, the record. The fine-tuning, the model's load and each formulation are timed
// steps of their own; the rest is the cell's StepCell (all of it for a cell read back).
func (r *runner) cell(c cellPlan, base *CellRecord) (*CellRecord, error) {
	modelDir, modelHash, err := r.cellModel(c)
	if err != nil {
		return nil, err
	}
	key, err := r.cellKeyOf(c, modelDir, modelHash, base)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(r.opt.Work, "cells", key[:32])
	if rec, ok := r.cachedCell(c, dir, key, modelDir); ok {
		for _, f := range r.s.Formulations {
			r.watch.skip(cachedStep(c.step(StepEvaluate, f)))
		}
		r.watch.lapAside(cachedStep(c.step(StepCell, "")))
		return rec, nil
	}
	if r.loadedDir != modelDir {
		r.watch.setAside() // the key and the cache lookup
		if err := r.load(modelDir); err != nil {
			return nil, fmt.Errorf("task %s, model %s, %s: %w", c.task.Name, c.model.Name, c.cond, err)
		}
		r.watch.lap(c.step(StepLoad, ""))
	}
	retriever, err := r.retriever(c)
	if err != nil {
		return nil, err
	}
	rec, runs, err := r.evaluate(c, dir, key, modelDir, modelHash, retriever, base)
	if err != nil {
		return nil, err
	}
	if err := r.record(c, rec, runs); err != nil {
		return nil, err
	}
	r.watch.lapAside(c.step(StepCell, ""))
	return rec, nil
}

// cachedStep marks a step as read from the cache.
func cachedStep(s TimedStep) TimedStep {
	s.Cached = true
	return s
}

// cellModel is the folder and hash of the model a cell evaluates: the suite's model, or for a
// fine-tuned condition its fine-tuning on the cell's task with the cell's seed.
func (r *runner) cellModel(c cellPlan) (dir, hash string, err error) {
	if !isFineTuned(c.cond) {
		return c.model.dir, c.model.hash, nil
	}
	ft, err := r.fineTuning(c.task, c.model, c.seed)
	if err != nil {
		return "", "", err
	}
	return ft.dir, ft.hash, nil
}

// load makes modelDir's model the one in memory, unless it already is.
func (r *runner) load(modelDir string) error {
	if r.loadedDir == modelDir {
		return nil
	}
	r.loaded, r.loadedDir = nil, ""
	model, enc, err := LoadForEval(modelDir, r.s.Eval.loadOptions(), r.s.Eval.EncodingOptions)
	if err != nil {
		return err
	}
	r.loaded, r.enc, r.loadedDir = model, enc, modelDir
	return nil
}

// retriever opens the task's index for a condition that retrieves (nil for the others).
func (r *runner) retriever(c cellPlan) (evaluation.Retriever, error) {
	if !usesRAG(c.cond) {
		return nil, nil
	}
	idx, err := rag.Open(c.task.index, r.opt.Embedders)
	if err != nil {
		return nil, err
	}
	return ragRetriever{idx}, nil
}

// evaluate scores every formulation of a cell with the model in memory, each compared with the
// base cell; the requests are cached in the cell's folder (cache.jsonl), so an interrupted cell
// resumes by batch.
func (r *runner) evaluate(c cellPlan, dir, key, modelDir, modelHash string, retriever evaluation.Retriever, base *CellRecord) (*CellRecord, []*evaluation.Run, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	cache, err := evaluation.OpenCache(filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		return nil, nil, err
	}
	defer cache.Close()
	index, _, k := c.retrieval()
	rec := &CellRecord{Key: key, Task: c.task.Name, Model: c.model.Name, Condition: c.cond, Seed: c.seed, ModelHash: modelHash,
		ModelDir: modelDir, ChatTemplate: c.model.ChatTemplate, Index: index, K: k, Formulations: map[string]*FormulationRecord{}, dir: dir,
		TaskOptions: r.s.taskOptions(c.task.Task), Encoding: r.s.Eval.EncodingOptions, MaxLength: r.enc.MaxLength, AddBOS: r.enc.AddBOS}
	var runs []*evaluation.Run
	for _, f := range r.s.Formulations {
		r.watch.setAside() // the cell's own work since the last step: retriever, request cache
		run, fr, err := r.formulation(c, f, modelHash, cache, retriever, base)
		if err != nil {
			return nil, nil, err
		}
		r.watch.lap(c.step(StepEvaluate, f))
		runs = append(runs, run)
		rec.Formulations[f] = fr
	}
	return rec, runs, nil
}

// formulation evaluates one formulation of a cell (the embedded evaluation task, in the model's
// chat template and the task's rendering) and compares its scores with the base cell's.
func (r *runner) formulation(c cellPlan, f, modelHash string, cache *evaluation.Cache, retriever evaluation.Retriever, base *CellRecord) (*evaluation.Run, *FormulationRecord, error) {
	task, err := evaluation.DefaultTask(f)
	if err != nil {
		return nil, nil, err
	}
	task.ChatTemplate = c.model.ChatTemplate
	r.s.taskOptions(c.task.Task).Apply(task)
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, "cell %s / %s / %s%s / %s\n", c.task.Name, c.model.Name, c.cond, seedSuffix(c.seed), f)
	}
	_, _, k := c.retrieval()
	scorer, modelKey := r.scorer(task, modelHash)
	opt := evaluation.Options{Task: task, Encoder: r.enc, Scorer: scorer,
		ModelKey: modelKey, Model: c.model.Name, BatchSize: r.s.Eval.BatchSize, Cache: cache, Retriever: retriever,
		K: k, Limit: r.s.Eval.Limit, Progress: r.opt.Progress}
	if task.Generates() {
		if opt.Generation, err = GenerationFor(r.loaded, r.enc); err != nil {
			return nil, nil, fmt.Errorf("task %s, model %s, %s, %s: %w", c.task.Name, c.model.Name, c.cond, f, err)
		}
	}
	run, err := evaluation.Evaluate(c.task.cur.Test, opt)
	if err != nil {
		return nil, nil, fmt.Errorf("task %s, model %s, %s, %s: %w", c.task.Name, c.model.Name, c.cond, f, err)
	}
	fr := &FormulationRecord{TaskName: task.Name, Predicted: predicted(run.Samples)}
	if base != nil && c.cond != results.Base {
		if err := r.compareWithBase(c, f, fr, base, run.Samples); err != nil {
			return nil, nil, err
		}
	}
	return run, fr, nil
}

// sharedContextKey is what eval.shared_context adds to the model hash that keys a cell's
// scored requests (evaluation.CacheKey), so the two paths' numbers are never read for each other.
const sharedContextKey = "+shared-context"

// scorer is what scores task's choices in a cell and the key its requests are cached under: the
// loaded model, or with eval.shared_context its shared-context path under the model hash plus
// sharedContextKey. A generating task (recall) scores nothing and keeps the model hash.
func (r *runner) scorer(task *evaluation.Task, modelHash string) (evaluation.Scorer, string) {
	if r.s.Eval.SharedContext && !task.Generates() {
		return lm.SharedContextScorer{Model: r.loaded}, modelHash + sharedContextKey
	}
	return r.loaded, modelHash
}

// predicted counts the predicted choice indexes of samples (nil for recall, which predicts no
// choice).
func predicted(samples []evaluation.Sample) []int {
	var counts []int
	for _, s := range samples {
		if s.Prediction < 0 {
			continue
		}
		for len(counts) <= s.Prediction {
			counts = append(counts, 0)
		}
		counts[s.Prediction]++
	}
	return counts
}

// record completes a cell's folder: the runs' results and samples, their metrics merged into the
// record, then cell.json, written last: its presence (with the right key) is what marks the
// cell done.
func (r *runner) record(c cellPlan, rec *CellRecord, runs []*evaluation.Run) error {
	n := len(c.task.cur.Test)
	if err := evaluation.WriteRuns(rec.dir, n, runs...); err != nil {
		return err
	}
	merged, err := evaluation.MergeResults(n, runs...)
	if err != nil {
		return err
	}
	for _, fr := range rec.Formulations {
		fr.Extras = merged.Perpetual[fr.TaskName]
	}
	if err := writeJSON(filepath.Join(rec.dir, cellFile), rec); err != nil {
		return err
	}
	r.rep.CellsEvaluated++
	return nil
}

func seedSuffix(seed int64) string {
	if seed == 0 {
		return ""
	}
	return fmt.Sprintf(" (seed %d)", seed)
}
