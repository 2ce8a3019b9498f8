package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/rag"
)

// Options control Run.
type Options struct {
	// Out is the results folder (results.md, results.json, samples/, charts/).
	Out string
	// Work holds the caches: curricula, indexes, zoo models, fine-tuned models, evaluated cells.
	// Default Out/cache.
	Work string
	// FineTuner trains the fine-tuned conditions; required when the suite has one and a
	// fine-tuned model is not cached yet.
	FineTuner FineTuner
	// Progress receives the suite's and each cell's progress bars (nil = none).
	Progress io.Writer
	// Charts renders the charts (HTML); PNG also screenshots them with headless Chromium.
	Charts, PNG bool
	// Chromium overrides plots.FindChromium.
	Chromium string
	// Zoo resolves "zoo:NAME" model paths (package zoo's Resolver for the committed models);
	// a suite naming one without a Zoo is an error.
	Zoo Zoo
	// Embedders loads the encoder of dense and hybrid retrieval (models/bert's Load); BM25
	// needs none.
	Embedders rag.EmbedderLoader
	// Now is the clock of timings.json (nil: time.Now); a test hands in a fake one to check
	// exact durations. With Jobs > 1 the lanes read it from their own goroutines.
	Now func() time.Time
	// Jobs is how many lanes run the suite's cells side by side (0 or 1: one lane). The work
	// comes in units, a task and a model's cells (base, RAG, then each seed's fine-tuning and
	// fine-tuned cells); each lane takes the next unit in plan order when it is free, and runs
	// it with one model in memory, so memory grows with the lanes. It pays where one model's
	// graphs leave cores idle (tiny models on two cores keep about 1.15 busy). Results are the
	// same whatever Jobs; timings.json records each step's lane. With more than one lane the
	// per-cell progress bars are off (they would interleave) and the suite's bar remains.
	Jobs int
}

// Report says what a Run did, and what it reused.
type Report struct {
	// CurriculaBuilt, IndexesBuilt, FineTuned and CellsEvaluated count work done in this run;
	// CellsCached counts cells read back from the cache.
	CurriculaBuilt, IndexesBuilt, FineTuned, CellsEvaluated, CellsCached int
	// ChartsRendered is false when the charts were already up to date.
	ChartsRendered bool
	// Results is what was written to results.json.
	Results *Results
	// Timings is what was written to timings.json: the wall time of each step.
	Timings *Timings
}

// runner holds one Run's state.
type runner struct {
	s      *Suite
	opt    Options
	ctx    context.Context
	hasher *folderHasher
	rep    *Report
	// watch times the run's steps for timings.json.
	watch *stopwatch
	// loaded is the one model kept in memory (cells are ordered so each model loads once).
	loadedDir string
	loaded    *lm.Model
	enc       evaluation.Encoder
	// encodings caches evalEncoding by model folder.
	encodings map[string]encodingInfo
	// fineTunings are this run's fine-tuned models, each trained or read back once.
	fineTunings map[fineTuningKey]fineTuning
}

// Run executes the suite: everything missing is built, trained and evaluated; everything else is
// read from the cache. It writes Out/results.md, Out/results.json, Out/samples/ and Out/charts/,
// and the wall time of each step in Out/timings.json and Out/timings.md.
func Run(ctx context.Context, s *Suite, opt Options) (*Report, error) {
	opt, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	watch := newStopwatch(opt.Now)
	if err := checkFineTuner(s, opt.FineTuner); err != nil {
		return nil, err
	}
	r := &runner{s: s, opt: opt, ctx: ctx, rep: &Report{}, watch: watch,
		hasher: newFolderHasher(filepath.Join(opt.Work, "file-hashes.json"))}
	defer r.hasher.Save()
	tasks, err := r.prepareTasks()
	if err != nil {
		return nil, err
	}
	models, err := r.prepareModels()
	if err != nil {
		return nil, err
	}
	_ = r.hasher.Save() // the checkpoints' hashes are kept even if a cell fails
	plan := s.plan(tasks, models)
	records, err := r.runCells(plan)
	if err != nil {
		return nil, err
	}
	losses, retention := r.fineTuningReport(plan)
	res := buildResults(s, tasks, records, losses)
	res.Retention = retention
	if err := r.writeOutputs(res, records); err != nil {
		return nil, err
	}
	r.rep.Results = res
	r.rep.Timings = r.watch.timings(s.Name)
	if err := r.writeTimings(r.rep.Timings); err != nil {
		return nil, err
	}
	return r.rep, nil
}

// resolve checks opt and fills in its defaults: Work is Out/cache unless set, and absolute, so
// the folders recorded in results.json work from any directory (notebooks); Now is time.Now
// unless set.
func (opt Options) resolve() (Options, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Out == "" {
		return opt, fmt.Errorf("results: an output folder is required")
	}
	if opt.Jobs < 0 {
		return opt, fmt.Errorf("results: jobs must be >= 1 (lanes of models evaluated at once), got %d", opt.Jobs)
	}
	if opt.Work == "" {
		opt.Work = filepath.Join(opt.Out, "cache")
	}
	work, err := filepath.Abs(opt.Work)
	if err != nil {
		return opt, err
	}
	opt.Work = work
	return opt, nil
}

// cellPlan is one cell of the suite: a task, a model, a condition and, for the fine-tuned
// conditions, a fine-tuning seed (0 otherwise).
type cellPlan struct {
	task  *preparedTask
	model *preparedModel
	cond  string
	seed  int64
}

// retrieval is the cell's index folder and key and the passages per prompt ("", "", 0 for a
// condition without RAG).
func (c cellPlan) retrieval() (index, indexKey string, k int) {
	if !usesRAG(c.cond) {
		return "", "", 0
	}
	return c.task.index, c.task.indexKey, c.task.RAG.K
}

// step is a timed step of the cell (kind StepLoad, StepEvaluate with its formulation, StepCell).
func (c cellPlan) step(kind, formulation string) TimedStep {
	return TimedStep{Kind: kind, Formulation: formulation, Task: c.task.Name, Model: c.model.Name, Condition: c.cond, Seed: c.seed}
}

// plan lists the suite's cells in the order they run: for each task and model, the base
// conditions first (the base cell is what the others are compared with), then for each seed
// the fine-tuned conditions, so that each model, base or fine-tuned, is loaded once.
func (s *Suite) plan(tasks []*preparedTask, models []*preparedModel) []cellPlan {
	var out []cellPlan
	for _, t := range tasks {
		for _, m := range models {
			for _, cond := range []string{results.Base, results.RAG} {
				if s.Needs(cond) {
					out = append(out, cellPlan{task: t, model: m, cond: cond})
				}
			}
			for _, seed := range s.Seeds {
				for _, cond := range []string{results.FineTuned, results.FineTunedRAG} {
					if s.Needs(cond) {
						out = append(out, cellPlan{task: t, model: m, cond: cond, seed: seed})
					}
				}
			}
		}
	}
	return out
}

// runCells evaluates (or reads back) the planned cells: in plan order with one lane, or unit by
// unit (lanes) with Jobs lanes side by side, each lane taking the next unit when it is free.
// Records come back in plan order.
func (r *runner) runCells(plan []cellPlan) ([]*CellRecord, error) {
	bar := r.progressBar(len(plan))
	records := make([]*CellRecord, len(plan))
	defer func() { r.loaded = nil }() // the report needs no model
	units := units(plan)
	n := max(1, min(r.opt.Jobs, len(units)))
	if n == 1 {
		for _, u := range units {
			if err := r.runLane(plan, u, records, bar, &sync.Mutex{}); err != nil {
				return nil, err
			}
		}
		return records, nil
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	workers := make([]*runner, n)
	watches := make([]*stopwatch, n)
	errs := make([]error, n)
	var mu, barMu sync.Mutex
	next := 0 // the next unit to take
	take := func() ([]int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next == len(units) {
			return nil, false
		}
		next++
		return units[next-1], true
	}
	var wg sync.WaitGroup
	for i := range n {
		opt := r.opt
		opt.Progress = nil // one lane's bars would overwrite the other's; the suite's bar stays
		watches[i] = r.watch.fork(i + 1)
		workers[i] = &runner{s: r.s, opt: opt, ctx: ctx, hasher: r.hasher, rep: &Report{}, watch: watches[i]}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u, ok := take(); ok; u, ok = take() {
				if errs[i] = workers[i].runLane(plan, u, records, bar, &barMu); errs[i] != nil {
					cancel() // the other lanes stop at their next cell
					return
				}
			}
		}()
	}
	wg.Wait()
	r.watch.join(watches)
	for _, w := range workers {
		r.rep.CellsEvaluated += w.rep.CellsEvaluated
		r.rep.CellsCached += w.rep.CellsCached
		r.rep.FineTuned += w.rep.FineTuned
		for k, ft := range w.fineTunings {
			if r.fineTunings == nil {
				r.fineTunings = map[fineTuningKey]fineTuning{}
			}
			r.fineTunings[k] = ft
		}
	}
	// The first lane's own failure, not a lane stopped because another failed.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return records, nil
}

// units splits the plan into its units of work, in plan order: the runs of cells of one task
// and model (indexes into plan). A unit holds its base cell before the cells compared with it,
// and its fine-tunings, so units can run in any order.
func units(plan []cellPlan) [][]int {
	var out [][]int
	for i, c := range plan {
		if i == 0 || c.task != plan[i-1].task || c.model != plan[i-1].model {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], i)
	}
	return out
}

// runLane evaluates a unit's cells (indexes into plan) in order into records, and counts each on
// the suite's bar.
func (r *runner) runLane(plan []cellPlan, lane []int, records []*CellRecord, bar *progressbar.ProgressBar, barMu *sync.Mutex) error {
	type pair struct {
		task  *preparedTask
		model *preparedModel
	}
	bases := map[pair]*CellRecord{} // each task and model's base cell
	for _, i := range lane {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		c := plan[i]
		p := pair{c.task, c.model}
		rec, err := r.cell(c, bases[p])
		if err != nil {
			return err
		}
		if c.cond == results.Base {
			bases[p] = rec
		}
		records[i] = rec
		if bar != nil {
			barMu.Lock()
			_ = bar.Add(1)
			barMu.Unlock()
		}
	}
	return nil
}

// progressBar is the suite's bar over its cells (nil without Options.Progress).
func (r *runner) progressBar(cells int) *progressbar.ProgressBar {
	w := r.opt.Progress
	if w == nil {
		return nil
	}
	bar := progressbar.NewOptions(cells, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("suite "+r.s.Name), progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("cell"), progressbar.OptionThrottle(0),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	_ = bar.RenderBlank() // start the clock now, not at the first update (rates and ETA)
	return bar
}

func isFineTuned(condition string) bool {
	return condition == results.FineTuned || condition == results.FineTunedRAG
}

func usesRAG(condition string) bool {
	return condition == results.RAG || condition == results.FineTunedRAG
}
