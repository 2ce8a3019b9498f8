// Package results owns the schema of a results folder's results.json: the condition names and
// the lists every reader shares (the Summary: accuracy cells, fine-tuning loss, retrieval recall,
// learning curves, retention), with Load, Read and Validate. The harness writes these lists
// (beside its own rows, tasks and records, which it defines on top), `perpetual zoo curve`
// writes curves, and package plots charts a Summary it is handed. The package imports neither
// harness nor plots, so both depend on it and not on each other.
package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// File is the name of the file Load reads inside a results directory.
const File = "results.json"

// The four evaluation conditions of the study, in the order tables and charts show them.
const (
	Base         = "base"
	FineTuned    = "finetuned"
	RAG          = "rag"
	FineTunedRAG = "finetuned+rag"
)

// Conditions lists the valid Cell.Condition values in display order.
var Conditions = []string{Base, FineTuned, RAG, FineTunedRAG}

// Cell is one evaluated cell of the results table: a task, a model, a condition and a question
// formulation, with its accuracy, 95% interval and the paired test against the base condition.
type Cell struct {
	Task        string  `json:"task"`
	Model       string  `json:"model"`
	Condition   string  `json:"condition"` // one of Conditions
	Formulation string  `json:"formulation"`
	Acc         float64 `json:"acc"`
	Low         float64 `json:"low"`
	High        float64 `json:"high"`
	N           int     `json:"n"`
	// DeltaVsBase, PValue and Significant compare the cell with the same task, model and
	// formulation under Base (paired over questions); they are zero/false for Base itself.
	DeltaVsBase float64 `json:"delta_vs_base"`
	PValue      float64 `json:"p_value"`
	Significant bool    `json:"significant"`
}

// LossPoint is one logged training step of a fine-tuning run. ValLoss is nil on steps without a
// validation pass.
type LossPoint struct {
	Model   string   `json:"model"`
	Task    string   `json:"task"`
	Step    int      `json:"step"`
	Loss    float64  `json:"loss"`
	ValLoss *float64 `json:"val_loss,omitempty"`
}

// RecallPoint is the retrieval recall@K of one retriever on one task's questions.
type RecallPoint struct {
	Task      string  `json:"task"`
	Retriever string  `json:"retriever"`
	K         int     `json:"k"`
	Recall    float64 `json:"recall"`
}

// CurvePoint is one point of a learning curve: a probe's score (e.g. held-out reading accuracy)
// of a model in training, at an optimizer step.
type CurvePoint struct {
	Model string  `json:"model"`
	Probe string  `json:"probe"`
	Step  int     `json:"step"`
	Value float64 `json:"value"`
}

// Retention is assistant behaviour before and after a fine-tuning, on general instructions
// held out from every training set: the perplexity of the reference answers (lower is better)
// and the share of prompts answered with a greedy reply that ends (EOS) within the limit. A
// FineTuner reports it (harness.FineTuneResult); results.json keeps it per fine-tuning.
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

// RetentionPoint is one fine-tuning's Retention: a model fine-tuned on a task with a seed.
type RetentionPoint struct {
	Task  string `json:"task"`
	Model string `json:"model"`
	Seed  int64  `json:"seed"`
	Retention
}

// Summary is the part of results.json every reader shares:
//
//	{"cells": [Cell...], "loss": [LossPoint...], "recall": [RecallPoint...], "curves": [CurvePoint...],
//	 "retention": [RetentionPoint...]}
//
// Other top-level keys are ignored, so the harness keeps more in the same file. Every list may
// be empty; charts are made for what is there.
type Summary struct {
	Cells  []Cell        `json:"cells"`
	Loss   []LossPoint   `json:"loss"`
	Recall []RecallPoint `json:"recall"`
	Curves []CurvePoint  `json:"curves,omitempty"`
	// Retention, with the fine-tuned cells, gives the gain-versus-retention charts.
	Retention []RetentionPoint `json:"retention,omitempty"`
}

// Load reads and validates dir/results.json.
func Load(dir string) (*Summary, error) {
	path := filepath.Join(dir, File)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	defer f.Close()
	return Read(f, path)
}

// Read decodes and validates results JSON from r; name (usually the file path) prefixes errors.
func Read(r io.Reader, name string) (*Summary, error) {
	var top map[string]json.RawMessage
	if err := json.NewDecoder(r).Decode(&top); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file, expected a JSON object with cells, loss and recall", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	_, hasCells := top["cells"]
	_, hasLoss := top["loss"]
	_, hasRecall := top["recall"]
	_, hasCurves := top["curves"]
	if !hasCells && !hasLoss && !hasRecall && !hasCurves {
		// E.g. an evaluation run's lm-evaluation-harness results.json, which is a different file.
		return nil, fmt.Errorf("%s: no \"cells\", \"loss\", \"recall\" or \"curves\" key: not a harness results file", name)
	}
	var res Summary
	for key, dst := range map[string]any{"cells": &res.Cells, "loss": &res.Loss, "recall": &res.Recall, "curves": &res.Curves, "retention": &res.Retention} {
		if raw, ok := top[key]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", name, key, err)
			}
		}
	}
	if err := res.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &res, nil
}

// Validate checks every value a chart depends on, so that rendering never meets a NaN, an
// unknown condition or an interval that does not contain its accuracy.
func (r *Summary) Validate() error {
	seen := map[[4]string]int{}
	for i, c := range r.Cells {
		at := func(format string, args ...any) error {
			return fmt.Errorf("cells[%d] (%s/%s/%s): %s", i, c.Task, c.Model, c.Condition, fmt.Sprintf(format, args...))
		}
		switch {
		case c.Task == "":
			return at("empty task")
		case c.Model == "":
			return at("empty model")
		case !validCondition(c.Condition):
			return at("condition %q is not one of %v", c.Condition, Conditions)
		case c.N < 0:
			return at("negative n %d", c.N)
		}
		for _, v := range []struct {
			name string
			x    float64
		}{{"acc", c.Acc}, {"low", c.Low}, {"high", c.High}, {"p_value", c.PValue}} {
			if !finite(v.x) || v.x < 0 || v.x > 1 {
				return at("%s %v outside [0, 1]", v.name, v.x)
			}
		}
		if !finite(c.DeltaVsBase) || c.DeltaVsBase < -1 || c.DeltaVsBase > 1 {
			return at("delta_vs_base %v outside [-1, 1]", c.DeltaVsBase)
		}
		if c.Low > c.Acc || c.Acc > c.High {
			return at("interval [%v, %v] does not contain acc %v", c.Low, c.High, c.Acc)
		}
		key := [4]string{c.Task, c.Model, c.Condition, c.Formulation}
		if j, dup := seen[key]; dup {
			return at("duplicate of cells[%d] (same task, model, condition and formulation)", j)
		}
		seen[key] = i
	}
	for i, p := range r.Loss {
		switch {
		case p.Model == "" || p.Task == "":
			return fmt.Errorf("loss[%d]: empty model or task", i)
		case p.Step < 0:
			return fmt.Errorf("loss[%d] (%s/%s): negative step %d", i, p.Model, p.Task, p.Step)
		case !finite(p.Loss):
			return fmt.Errorf("loss[%d] (%s/%s step %d): loss %v is not finite", i, p.Model, p.Task, p.Step, p.Loss)
		case p.ValLoss != nil && !finite(*p.ValLoss):
			return fmt.Errorf("loss[%d] (%s/%s step %d): val_loss %v is not finite", i, p.Model, p.Task, p.Step, *p.ValLoss)
		}
	}
	for i, p := range r.Recall {
		switch {
		case p.Task == "" || p.Retriever == "":
			return fmt.Errorf("recall[%d]: empty task or retriever", i)
		case p.K < 1:
			return fmt.Errorf("recall[%d] (%s/%s): k %d < 1", i, p.Task, p.Retriever, p.K)
		case !finite(p.Recall) || p.Recall < 0 || p.Recall > 1:
			return fmt.Errorf("recall[%d] (%s/%s k=%d): recall %v outside [0, 1]", i, p.Task, p.Retriever, p.K, p.Recall)
		}
	}
	for i, p := range r.Retention {
		if p.Task == "" || p.Model == "" {
			return fmt.Errorf("retention[%d]: empty task or model", i)
		}
		for _, v := range []float64{p.PerplexityBefore, p.PerplexityAfter} {
			if !finite(v) || v < 1 {
				return fmt.Errorf("retention[%d] (%s/%s): perplexity %v is not a finite number >= 1", i, p.Task, p.Model, v)
			}
		}
		for _, v := range []float64{p.StopRateBefore, p.StopRateAfter} {
			if !finite(v) || v < 0 || v > 1 {
				return fmt.Errorf("retention[%d] (%s/%s): stop rate %v outside [0, 1]", i, p.Task, p.Model, v)
			}
		}
	}
	for i, p := range r.Curves {
		switch {
		case p.Model == "" || p.Probe == "":
			return fmt.Errorf("curves[%d]: empty model or probe", i)
		case p.Step < 0:
			return fmt.Errorf("curves[%d] (%s/%s): negative step %d", i, p.Model, p.Probe, p.Step)
		case !finite(p.Value):
			return fmt.Errorf("curves[%d] (%s/%s step %d): value %v is not finite", i, p.Model, p.Probe, p.Step, p.Value)
		}
	}
	return nil
}

func validCondition(c string) bool {
	for _, v := range Conditions {
		if c == v {
			return true
		}
	}
	return false
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
