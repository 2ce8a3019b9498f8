package harness

import (
	"fmt"
	"io"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/rag"
)

// EvaluateOne evaluates one cell of a results folder again, on its first limit questions
// (0 = all), with the model, prompt format and retrieval the harness used, and no cache: for
// looking at a cell interactively (notebooks/eval.ipynb). Cells with dense or hybrid retrieval
// need the encoder loader of a Run (Options.Embedders) and are refused here with that reason.
func EvaluateOne(res *Results, task, model, condition, formulation string, limit int, progress io.Writer) (*evaluation.Run, error) {
	rec, err := res.Record(task, model, condition)
	if err != nil {
		return nil, err
	}
	info, err := res.Task(task)
	if err != nil {
		return nil, err
	}
	c, err := curriculum.Read(info.Curriculum)
	if err != nil {
		return nil, err
	}
	t, err := evaluation.DefaultTask(formulation)
	if err != nil {
		return nil, err
	}
	t.ChatTemplate = rec.ChatTemplate
	rec.TaskOptions.Apply(t)
	m, enc, err := LoadForEval(rec.ModelDir, lm.LoadOptions{}, rec.Encoding)
	if err != nil {
		return nil, fmt.Errorf("cell %s / %s / %s: %w", task, model, condition, err)
	}
	opt := evaluation.Options{Task: t, Encoder: enc, Scorer: m, ModelKey: rec.ModelHash, Model: model,
		BatchSize: 8, Limit: limit, Progress: progress}
	if t.Generates() {
		if opt.Generation, err = GenerationFor(m, enc); err != nil {
			return nil, err
		}
	}
	if rec.Index != "" {
		idx, err := rag.Open(rec.Index, nil) // BM25; a dense index says it needs an encoder loader
		if err != nil {
			return nil, err
		}
		opt.Retriever, opt.K = ragRetriever{idx}, rec.K
	}
	return evaluation.Evaluate(c.Test, opt)
}
