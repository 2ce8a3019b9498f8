package evaluation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// Job is one `perpetual eval` invocation once a model and tokenizer are loaded: which test, which
// tasks, where to write, and optionally a base run to compare against.
type Job struct {
	// Test is a test file or folder (see LoadTest).
	Test string
	// TaskFile is a task YAML; empty means the embedded task of each formulation.
	TaskFile string
	// Formulations to run with the embedded tasks (default letters then cloze; Recall also
	// needs Generation).
	Formulations []string
	// Limit evaluates the first Limit questions (0 = all).
	Limit int
	// Out is the output folder: results.json, samples_<task>.jsonl, cache.jsonl, comparison.json.
	Out string
	// BatchSize is passed to the scorer.
	BatchSize int
	// Retriever and K add retrieved context (nil = none).
	Retriever Retriever
	K         int
	// CachePath overrides <Out>/cache.jsonl; NoCache disables the cache.
	CachePath string
	NoCache   bool
	// Base is the output folder of a base run; each task found there is compared (paired tests).
	Base string
	// BootstrapIterations and Seed configure the paired bootstrap (defaults 10000 and 1).
	BootstrapIterations int
	Seed                uint64
	// Progress receives progress bars (nil = none).
	Progress io.Writer
	// Generation generates the answers of a generate_until task (the recall formulation).
	Generation *Generation
}

// Outcome is what a Job produced.
type Outcome struct {
	Runs    []*Run
	Results *Results
	// Comparisons test each task's acc (recall: exact match) against the base run;
	// ContainsComparisons test recall's contains score.
	Comparisons         map[string]Comparison
	ContainsComparisons map[string]Comparison
}

// Run evaluates the job with a loaded model: scorer, encoder (tokenizer, BOS, window), a model
// name for the record and its hash for the cache.
func (j Job) Run(scorer Scorer, enc Encoder, model, modelKey string) (*Outcome, error) {
	if j.Out == "" {
		return nil, fmt.Errorf("eval: an output folder is required")
	}
	if j.K < 0 || j.Limit < 0 || j.BatchSize < 0 {
		return nil, fmt.Errorf("eval: negative K (%d), Limit (%d) or BatchSize (%d)", j.K, j.Limit, j.BatchSize)
	}
	qs, _, err := LoadTest(j.Test)
	if err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("eval: %s has no test questions", j.Test)
	}
	var tasks []*Task
	if j.TaskFile != "" {
		t, err := LoadTask(j.TaskFile)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	} else {
		forms := j.Formulations
		if len(forms) == 0 {
			forms = []string{Letters, Cloze}
		}
		for _, f := range forms {
			t, err := DefaultTask(f)
			if err != nil {
				return nil, err
			}
			tasks = append(tasks, t)
		}
	}
	if err := os.MkdirAll(j.Out, 0o755); err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var cache *Cache
	if !j.NoCache {
		path := j.CachePath
		if path == "" {
			path = filepath.Join(j.Out, "cache.jsonl")
		}
		if cache, err = OpenCache(path); err != nil {
			return nil, err
		}
		defer cache.Close()
	}
	out := &Outcome{Comparisons: map[string]Comparison{}, ContainsComparisons: map[string]Comparison{}}
	for _, t := range tasks {
		run, err := Evaluate(qs, Options{Task: t, Encoder: enc, Scorer: scorer, ModelKey: modelKey, Model: model,
			BatchSize: j.BatchSize, Cache: cache, Retriever: j.Retriever, K: j.K, Limit: j.Limit, Progress: j.Progress,
			Generation: j.Generation})
		if err != nil {
			return nil, err
		}
		out.Runs = append(out.Runs, run)
		// Write after every task, so a later task's failure keeps the earlier results.
		if err := WriteRuns(j.Out, len(qs), out.Runs...); err != nil {
			return nil, err
		}
	}
	if out.Results, err = MergeResults(len(qs), out.Runs...); err != nil {
		return nil, err
	}
	if j.Base != "" {
		iters, seed := j.BootstrapIterations, j.Seed
		if iters == 0 {
			iters = 10000
		}
		if seed == 0 {
			seed = 1
		}
		for _, run := range out.Runs {
			base, err := ReadSamples(filepath.Join(j.Base, SamplesFile(run.Task.Name)))
			if errors.Is(err, os.ErrNotExist) {
				continue // the base run did not include this task
			}
			if err != nil {
				return nil, err
			}
			c, err := Compare(base, run.Samples, iters, seed)
			if err != nil {
				return nil, fmt.Errorf("eval: comparing %s with %s: %w", run.Task.Name, j.Base, err)
			}
			out.Comparisons[run.Task.Name] = c
			if run.Task.Generates() {
				if c, err = CompareMetric(base, run.Samples, MetricContains, iters, seed); err != nil {
					return nil, fmt.Errorf("eval: comparing %s with %s: %w", run.Task.Name, j.Base, err)
				}
				out.ContainsComparisons[run.Task.Name] = c
			}
		}
		var buf bytes.Buffer
		enc := newJSONEncoder(&buf)
		enc.SetIndent("", "  ")
		doc := map[string]any{"base": j.Base, "comparisons": out.Comparisons}
		if len(out.ContainsComparisons) > 0 {
			doc["contains_comparisons"] = out.ContainsComparisons
		}
		if err := enc.Encode(doc); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(j.Out, "comparison.json"), buf.Bytes()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Summary is a short human-readable table of the outcome: one line per task with acc,
// acc_norm, Wilson interval and baselines (for recall: exact match and contains with their
// intervals), plus paired comparisons.
func (o *Outcome) Summary() string {
	var b bytes.Buffer
	for _, r := range o.Runs {
		ex := o.Results.Perpetual[r.Task.Name]
		s := ex.Overall
		if c := s.Contains; c != nil {
			fmt.Fprintf(&b, "%-20s n=%-5d exact_match %.4f ±%.4f [%.4f, %.4f]  contains %.4f ±%.4f [%.4f, %.4f]\n",
				r.Task.Name, s.N, s.Acc, s.Stderr, s.Wilson[0], s.Wilson[1], c.Mean, c.Stderr, c.Wilson[0], c.Wilson[1])
		} else {
			fmt.Fprintf(&b, "%-20s n=%-5d acc %.4f ±%.4f [%.4f, %.4f]  acc_norm %.4f  chance %.4f  always-B %.4f\n",
				r.Task.Name, s.N, s.Acc, s.Stderr, s.Wilson[0], s.Wilson[1], s.AccNorm, ex.Baselines.Chance, ex.Baselines.Always["B"])
		}
		for _, kind := range []string{"seen", "document_only", "unknown"} {
			if k, ok := ex.ByKind[kind]; ok && len(ex.ByKind) > 1 {
				fmt.Fprintf(&b, "  %-18s n=%-5d acc %.4f [%.4f, %.4f]\n", kind, k.N, k.Acc, k.Wilson[0], k.Wilson[1])
			}
		}
		if ex.Retrieval != nil {
			fmt.Fprintf(&b, "  retrieval k=%d recall@k %.4f (n=%d), passages cut %d in %d questions\n",
				ex.Retrieval.K, ex.Retrieval.RecallAtK, ex.Retrieval.RecallN, ex.Retrieval.PassagesCut, ex.Retrieval.QuestionsWithCut)
		}
		if c, ok := o.Comparisons[r.Task.Name]; ok {
			fmt.Fprintf(&b, "  vs base: %.4f -> %.4f, diff %+.4f [%.4f, %.4f] bootstrap p=%.4g, McNemar p=%.4g (%d/%d discordant)\n",
				c.BaseAcc, c.Acc, c.Bootstrap.Diff, c.Bootstrap.Lo, c.Bootstrap.Hi, c.Bootstrap.P, c.McNemar.P, c.McNemar.OnlyA, c.McNemar.OnlyB)
		}
		if c, ok := o.ContainsComparisons[r.Task.Name]; ok {
			fmt.Fprintf(&b, "  contains vs base: %.4f -> %.4f, diff %+.4f [%.4f, %.4f] bootstrap p=%.4g, McNemar p=%.4g (%d/%d discordant)\n",
				c.BaseAcc, c.Acc, c.Bootstrap.Diff, c.Bootstrap.Lo, c.Bootstrap.Hi, c.Bootstrap.P, c.McNemar.P, c.McNemar.OnlyA, c.McNemar.OnlyB)
		}
	}
	return b.String()
}
