package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/schollz/progressbar/v3"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
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
}

// preparedTask is a suite task with its curriculum and index on disk.
type preparedTask struct {
	Task
	dir      string // curriculum folder
	hash     string // curriculum identity
	cur      *curriculum.Curriculum
	index    string // rag index folder ("" without rag conditions)
	indexKey string
	leakage  leakage.Report
	recall   *rag.RecallReport
}

// preparedModel is a suite model resolved to a folder.
type preparedModel struct {
	Model
	dir, hash string
}

// runner holds one Run's state.
type runner struct {
	s      *Suite
	opt    Options
	ctx    context.Context
	hasher *folderHasher
	rep    *Report
	// loaded is the one model kept in memory (cells are ordered so each model loads once).
	loadedDir string
	loaded    *lm.Model
	enc       evaluation.Encoder
	// encodings caches evalEncoding by model folder.
	encodings map[string]encodingInfo
	// retention collects the fine-tunings' retention measurements, in run order.
	retention []RetentionRow
}

// encodingInfo is an evalEncoding result.
type encodingInfo struct {
	enc     evaluation.Encoding
	changed bool
}

// Run executes the suite: everything missing is built, trained and evaluated; everything else is
// read from the cache. It writes Out/results.md, Out/results.json, Out/samples/ and Out/charts/.
func Run(ctx context.Context, s *Suite, opt Options) (*Report, error) {
	if opt.Out == "" {
		return nil, fmt.Errorf("results: an output folder is required")
	}
	if opt.Work == "" {
		opt.Work = filepath.Join(opt.Out, "cache")
	}
	// Absolute, so the folders recorded in results.json work from any directory (notebooks).
	work, err := filepath.Abs(opt.Work)
	if err != nil {
		return nil, err
	}
	opt.Work = work
	// Fine-tuned models are keyed by the fine-tuner's version, so none can be found without one:
	// say so before any work.
	if (s.Needs(results.FineTuned) || s.Needs(results.FineTunedRAG)) && opt.FineTuner == nil {
		return nil, fmt.Errorf("results: suite %s asks for fine-tuned conditions but no fine-tuner is available", s.Name)
	}
	// A recipe the fine-tuner would refuse is refused now, not after the base and RAG cells ran.
	if v, ok := opt.FineTuner.(RecipeValidator); ok && (s.Needs(results.FineTuned) || s.Needs(results.FineTunedRAG)) {
		if err := v.ValidateRecipe(s.Training); err != nil {
			return nil, fmt.Errorf("results: suite %s: training: %w", s.Name, err)
		}
	}
	r := &runner{s: s, opt: opt, ctx: ctx, rep: &Report{},
		hasher: newFolderHasher(filepath.Join(opt.Work, "file-hashes.json"))}
	defer r.hasher.Save()

	var tasks []*preparedTask
	for _, t := range s.Tasks {
		pt, err := r.prepareTask(t)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, pt)
	}
	var models []*preparedModel
	for _, m := range s.Models {
		dir, err := ResolveModel(m.Path, filepath.Join(opt.Work, "zoo"), opt.Zoo)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
		hash, err := r.hasher.Hash(dir)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
		models = append(models, &preparedModel{Model: m, dir: dir, hash: hash})
	}
	_ = r.hasher.Save()

	// Count the cells for the suite's progress bar.
	total := 0
	for range tasks {
		for range models {
			for _, c := range s.Conditions {
				if isFineTuned(c) {
					total += len(s.Seeds)
				} else {
					total++
				}
			}
		}
	}
	var bar *progressbar.ProgressBar
	if opt.Progress != nil {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(opt.Progress),
			progressbar.OptionSetDescription("suite "+s.Name), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("cell"), progressbar.OptionThrottle(0),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(opt.Progress) }))
		_ = bar.RenderBlank() // start the clock now, not at the first update (rates and ETA)
	}
	var records []*CellRecord
	var losses []results.LossPoint
	for _, t := range tasks {
		for _, m := range models {
			cells, loss, err := r.runTaskModel(t, m, bar)
			if err != nil {
				return nil, err
			}
			records = append(records, cells...)
			losses = append(losses, loss...)
		}
	}
	r.loaded = nil
	res := buildResults(s, tasks, records, losses)
	res.Retention = r.retention
	if err := r.writeOutputs(res, records); err != nil {
		return nil, err
	}
	r.rep.Results = res
	return r.rep, nil
}

func isFineTuned(condition string) bool {
	return condition == results.FineTuned || condition == results.FineTunedRAG
}

func usesRAG(condition string) bool {
	return condition == results.RAG || condition == results.FineTunedRAG
}

// prepareTask builds (or finds) the task's curriculum and index, and its leakage and recall.
func (r *runner) prepareTask(t Task) (*preparedTask, error) {
	pt := &preparedTask{Task: t}
	curricula := filepath.Join(r.opt.Work, "curricula")
	switch {
	case t.Synthetic != nil:
		src := *t.Synthetic
		pt.dir = filepath.Join(curricula, t.Name+"-"+keyOf("synthetic", src)[:16])
		err := buildDir(pt.dir, func(tmp string) error {
			c, err := synthetic.Build(src.Kind, synthetic.Options{Seed: src.Seed, Chunks: src.Chunks, FactsPerChunk: src.FactsPerChunk})
			if err != nil {
				return err
			}
			r.rep.CurriculaBuilt++
			return curriculum.Write(tmp, c)
		})
		if err != nil {
			return nil, fmt.Errorf("task %s: synthetic curriculum: %w", t.Name, err)
		}
	case t.Curriculum != "":
		pt.dir = t.Curriculum
	case t.Perpetual != "":
		var parts []string
		for _, f := range []string{"train.json", "test.json"} {
			h, err := r.hasher.file(filepath.Join(t.Perpetual, f))
			if err != nil {
				return nil, fmt.Errorf("task %s: Perpetual data %s: %w", t.Name, t.Perpetual, err)
			}
			parts = append(parts, h)
		}
		pt.dir = filepath.Join(curricula, t.Name+"-"+keyOf("perpetual", parts)[:16])
		err := buildDir(pt.dir, func(tmp string) error {
			c, err := perpetualfmt.ReadDir(t.Perpetual, t.Name)
			if err != nil {
				return err
			}
			r.rep.CurriculaBuilt++
			return curriculum.Write(tmp, c)
		})
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.Name, err)
		}
	}
	c, err := curriculum.Read(pt.dir)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	if len(c.Test) == 0 {
		return nil, fmt.Errorf("task %s: curriculum %s has no test questions", t.Name, pt.dir)
	}
	pt.cur = c
	// The manifest records the SHA-256 of every file (checked by Read), so it identifies the curriculum.
	h, err := r.hasher.file(filepath.Join(pt.dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	pt.hash = h
	pt.leakage = leakage.Analyze(c, leakage.DefaultThreshold)

	if !r.s.Needs(results.RAG) && !r.s.Needs(results.FineTunedRAG) {
		return pt, nil
	}
	encoderHash := ""
	if t.RAG.Retriever != rag.KindBM25 {
		// The encoder's files are part of the index's identity: a changed encoder rebuilds the
		// index and re-scores the RAG cells instead of failing on the stale index.
		if encoderHash, err = r.hasher.Hash(t.RAG.Embedder); err != nil {
			return nil, fmt.Errorf("task %s: rag embedder %s: %w", t.Name, t.RAG.Embedder, err)
		}
	}
	pt.indexKey = keyOf("index", pt.hash, t.RAG.Retriever, t.RAG.Embedder, encoderHash)
	pt.index = filepath.Join(r.opt.Work, "indexes", t.Name+"-"+pt.indexKey[:16])
	recallPath := pt.index + ".recall.json"
	if _, err := os.Stat(pt.index); err != nil {
		idx, err := rag.Build(c.Chunks, rag.Options{Kind: t.RAG.Retriever, Dense: rag.DenseOptions{ModelDir: t.RAG.Embedder, Load: r.opt.Embedders}})
		if err != nil {
			return nil, fmt.Errorf("task %s: rag index: %w", t.Name, err)
		}
		if err := idx.Save(pt.index); err != nil {
			return nil, fmt.Errorf("task %s: rag index: %w", t.Name, err)
		}
		r.rep.IndexesBuilt++
	}
	var rec rag.RecallReport
	if err := readJSON(recallPath, &rec); err != nil {
		idx, err := rag.Open(pt.index, r.opt.Embedders)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.Name, err)
		}
		known := map[string]bool{}
		for _, ch := range idx.Chunks() {
			known[ch.ID] = true
		}
		rec, err = rag.Recall(idx, c.Test, func(id string) bool { return known[id] }, nil)
		if err != nil {
			return nil, fmt.Errorf("task %s: recall: %w", t.Name, err)
		}
		if err := writeJSON(recallPath, rec); err != nil {
			return nil, err
		}
	}
	pt.recall = &rec
	return pt, nil
}

// runTaskModel runs every condition (and seed) of one task and model, base first so the other
// cells can be compared with it.
func (r *runner) runTaskModel(t *preparedTask, m *preparedModel, bar *progressbar.ProgressBar) ([]*CellRecord, []results.LossPoint, error) {
	var out []*CellRecord
	var losses []results.LossPoint
	var base *CellRecord
	step := func() {
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	// Base conditions first: the base cell is what the others are compared with.
	for _, cond := range []string{results.Base, results.RAG} {
		if !r.s.Needs(cond) {
			continue
		}
		rec, err := r.cell(t, m, cond, 0, m.dir, m.hash, base)
		if err != nil {
			return nil, nil, err
		}
		if cond == results.Base {
			base = rec
		}
		out = append(out, rec)
		step()
	}
	if !r.s.Needs(results.FineTuned) && !r.s.Needs(results.FineTunedRAG) {
		return out, nil, nil
	}
	for _, seed := range r.s.Seeds {
		dir, hash, ft, err := r.fineTuned(t, m, seed)
		if err != nil {
			return nil, nil, err
		}
		name := m.Name
		if len(r.s.Seeds) > 1 {
			name = fmt.Sprintf("%s seed %d", m.Name, seed)
		}
		if ft.Retention != nil {
			r.retention = append(r.retention, RetentionRow{Task: t.Name, Model: m.Name, Seed: seed, Retention: *ft.Retention})
		}
		for _, l := range ft.Loss {
			losses = append(losses, results.LossPoint{Model: name, Task: t.Name, Step: l.Step, Loss: l.Loss, ValLoss: l.ValLoss})
		}
		for _, cond := range []string{results.FineTuned, results.FineTunedRAG} {
			if !r.s.Needs(cond) {
				continue
			}
			rec, err := r.cell(t, m, cond, seed, dir, hash, base)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, rec)
			step()
		}
	}
	return out, losses, nil
}

// fineTuned returns the fine-tuned model folder for (task, model, seed), training it if missing.
func (r *runner) fineTuned(t *preparedTask, m *preparedModel, seed int64) (dir, hash string, res FineTuneResult, err error) {
	key := keyOf("finetune", m.hash, t.hash, r.s.Training, m.PromptFormat, seed, r.opt.FineTuner.Version())
	dir = filepath.Join(r.opt.Work, "finetuned", fmt.Sprintf("%s-%s-s%d-%s", t.Name, m.Name, seed, key[:16]))
	lossPath := filepath.Join(dir, "harness-loss.json")
	if _, statErr := os.Stat(lossPath); statErr != nil {
		err = buildDir(dir, func(tmp string) error {
			res, err := r.opt.FineTuner.FineTune(r.ctx, FineTuneRequest{BaseModel: m.dir, Curriculum: t.dir, Out: tmp,
				PromptFormat: m.PromptFormat, Recipe: r.s.Training, Seed: seed, Progress: r.opt.Progress})
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

// cell evaluates (or reads back) one cell.
func (r *runner) cell(t *preparedTask, m *preparedModel, cond string, seed int64, modelDir, modelHash string, base *CellRecord) (*CellRecord, error) {
	baseKey := ""
	if base != nil {
		baseKey = base.Key
	}
	indexKey, k := "", 0
	if usesRAG(cond) {
		indexKey, k = t.indexKey, t.RAG.K
	}
	topts := r.s.taskOptions(t.Task)
	enc, err := r.encoding(modelDir)
	if err != nil {
		return nil, fmt.Errorf("task %s, model %s, %s: %w", t.Name, m.Name, cond, err)
	}
	parts := []any{"cell", t.Name, m.Name, m.ChatTemplate, cond, seed, modelHash, t.hash, indexKey, k, r.s.Formulations, r.s.Eval, baseKey}
	gen, err := generationParts(r.s.Formulations)
	if err != nil {
		return nil, err
	}
	key := cellKey(append(parts, gen...), topts, enc)
	dir := filepath.Join(r.opt.Work, "cells", key[:32])
	donePath := filepath.Join(dir, "cell.json")
	var rec CellRecord
	if err := readJSON(donePath, &rec); err == nil && rec.Key == key && rec.hasFormulations(r.s.Formulations) {
		// The key pins the contents; the folders may have moved (e.g. a renamed results folder).
		rec.dir, rec.ModelDir = dir, modelDir
		if usesRAG(cond) {
			rec.Index = t.index
		}
		r.rep.CellsCached++
		return &rec, nil
	}
	if r.loadedDir != modelDir {
		r.loaded, r.loadedDir = nil, ""
		model, enc, err := LoadForEval(modelDir, r.s.Eval.loadOptions(), r.s.Eval.EncodingOptions)
		if err != nil {
			return nil, fmt.Errorf("task %s, model %s, %s: %w", t.Name, m.Name, cond, err)
		}
		r.loaded, r.enc, r.loadedDir = model, enc, modelDir
	}
	var retriever evaluation.Retriever
	if usesRAG(cond) {
		idx, err := rag.Open(t.index, r.opt.Embedders)
		if err != nil {
			return nil, err
		}
		retriever = ragRetriever{idx}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cache, err := evaluation.OpenCache(filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		return nil, err
	}
	defer cache.Close()
	rec = CellRecord{Key: key, Task: t.Name, Model: m.Name, Condition: cond, Seed: seed, ModelHash: modelHash,
		ModelDir: modelDir, ChatTemplate: m.ChatTemplate, K: k, Formulations: map[string]*FormulationRecord{}, dir: dir,
		TaskOptions: topts, Encoding: r.s.Eval.EncodingOptions, MaxLength: r.enc.MaxLength, AddBOS: r.enc.AddBOS}
	if usesRAG(cond) {
		rec.Index = t.index
	}
	var runs []*evaluation.Run
	for _, f := range r.s.Formulations {
		task, err := evaluation.DefaultTask(f)
		if err != nil {
			return nil, err
		}
		task.ChatTemplate = m.ChatTemplate
		topts.Apply(task)
		if r.opt.Progress != nil {
			fmt.Fprintf(r.opt.Progress, "cell %s / %s / %s%s / %s\n", t.Name, m.Name, cond, seedSuffix(seed), f)
		}
		opt := evaluation.Options{Task: task, Encoder: r.enc, Scorer: r.loaded,
			ModelKey: modelHash, Model: m.Name, BatchSize: r.s.Eval.BatchSize, Cache: cache, Retriever: retriever,
			K: k, Limit: r.s.Eval.Limit, Progress: r.opt.Progress}
		if task.Generates() {
			if opt.Generation, err = GenerationFor(r.loaded, r.enc); err != nil {
				return nil, fmt.Errorf("task %s, model %s, %s, %s: %w", t.Name, m.Name, cond, f, err)
			}
		}
		run, err := evaluation.Evaluate(t.cur.Test, opt)
		if err != nil {
			return nil, fmt.Errorf("task %s, model %s, %s, %s: %w", t.Name, m.Name, cond, f, err)
		}
		runs = append(runs, run)
		fr := &FormulationRecord{TaskName: task.Name}
		for _, s := range run.Samples {
			if s.Prediction < 0 { // recall predicts no choice
				continue
			}
			for len(fr.Predicted) <= s.Prediction {
				fr.Predicted = append(fr.Predicted, 0)
			}
			fr.Predicted[s.Prediction]++
		}
		if base != nil && cond != results.Base {
			baseSamples, err := evaluation.ReadSamples(filepath.Join(base.dir, evaluation.SamplesFile(base.Formulations[f].TaskName)))
			if err != nil {
				return nil, err
			}
			for i, metric := range evaluation.Metrics(f) {
				all, byKind, err := r.compare(baseSamples, run.Samples, metric)
				if err != nil {
					return nil, fmt.Errorf("task %s, model %s, %s, %s: %w", t.Name, m.Name, cond, f, err)
				}
				if i == 0 {
					fr.VsBase, fr.VsBaseByKind = all, byKind
				} else if metric == evaluation.MetricContains {
					fr.ContainsVsBase, fr.ContainsVsBaseByKind = all, byKind
				}
			}
		}
		rec.Formulations[f] = fr
	}
	if err := evaluation.WriteRuns(dir, len(t.cur.Test), runs...); err != nil {
		return nil, err
	}
	merged, err := evaluation.MergeResults(len(t.cur.Test), runs...)
	if err != nil {
		return nil, err
	}
	for _, fr := range rec.Formulations {
		fr.Extras = merged.Perpetual[fr.TaskName]
	}
	// cell.json last: its presence (with the right key) is what marks the cell done.
	if err := writeJSON(donePath, &rec); err != nil {
		return nil, err
	}
	r.rep.CellsEvaluated++
	return &rec, nil
}

// compare tests a metric of a cell's samples against the base cell's, on all questions and per
// question kind.
func (r *runner) compare(base, samples []evaluation.Sample, metric string) (*evaluation.Comparison, map[string]evaluation.Comparison, error) {
	c, err := evaluation.CompareMetric(base, samples, metric, r.s.Eval.Bootstrap, 1)
	if err != nil {
		return nil, nil, err
	}
	byKind := map[string]evaluation.Comparison{}
	for _, kind := range kindsOf(samples) {
		var sub []evaluation.Sample
		for _, s := range samples {
			if s.Kind == kind {
				sub = append(sub, s)
			}
		}
		if c, err := evaluation.CompareMetric(base, sub, metric, r.s.Eval.Bootstrap, 1); err == nil {
			byKind[kind] = c
		}
	}
	return &c, byKind, nil
}

// hasFormulations reports whether a cell record holds every formulation (a cell.json written
// without one is evaluated again rather than reported with a hole).
func (rec *CellRecord) hasFormulations(forms []string) bool {
	for _, f := range forms {
		if rec.Formulations[f] == nil {
			return false
		}
	}
	return true
}

// generationParts are what a cell's key adds for a formulation that generates (recall): its
// embedded task, whose prompt, stop strings and max_gen_toks decide the answers. Formulations
// that only score choices add nothing, so their cells' keys are what they were.
func generationParts(forms []string) ([]any, error) {
	var parts []any
	for _, f := range forms {
		t, err := evaluation.DefaultTask(f)
		if err != nil {
			return nil, err
		}
		if t.Generates() {
			parts = append(parts, "generation_task", t)
		}
	}
	return parts, nil
}

// cellKey is a cell's cache key: keyOf(parts), where what issue 16 added joins the parts only
// when it changes the cell (rendering options, or a window or BOS setting other than the
// harness used before, e.g. Mamba's 2048), so cells cached before then stay valid.
func cellKey(parts []any, topts evaluation.TaskOptions, enc encodingInfo) string {
	if !topts.IsZero() {
		parts = append(parts, "task_options", topts)
	}
	if enc.changed {
		parts = append(parts, "encoding", enc.enc.MaxLength, enc.enc.AddBOS)
	}
	return keyOf(parts...)
}

// encoding is evalEncoding for a model folder, once per run.
func (r *runner) encoding(modelDir string) (encodingInfo, error) {
	if e, ok := r.encodings[modelDir]; ok {
		return e, nil
	}
	enc, changed, err := evalEncoding(modelDir, r.s.Eval.EncodingOptions)
	if err != nil {
		return encodingInfo{}, err
	}
	if r.encodings == nil {
		r.encodings = map[string]encodingInfo{}
	}
	r.encodings[modelDir] = encodingInfo{enc, changed}
	return r.encodings[modelDir], nil
}

func seedSuffix(seed int64) string {
	if seed == 0 {
		return ""
	}
	return fmt.Sprintf(" (seed %d)", seed)
}

// kindsOf lists the question kinds present in samples, sorted.
func kindsOf(samples []evaluation.Sample) []string {
	seen := map[string]bool{}
	for _, s := range samples {
		seen[s.Kind] = true
	}
	var kinds []string
	for k := range seen {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}
