package harness

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/rag"
)

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
	// code is the model's code version (lm.CodeVersionOf): cells and fine-tunings are cached
	// under it, so results of model code whose numerics changed are not reused.
	code string
}

// prepareTasks prepares every task of the suite, in order, each a timed step (cached when it
// built no curriculum and no index).
func (r *runner) prepareTasks() ([]*preparedTask, error) {
	var tasks []*preparedTask
	for _, t := range r.s.Tasks {
		built := r.rep.CurriculaBuilt + r.rep.IndexesBuilt
		pt, err := r.prepareTask(t)
		if err != nil {
			return nil, err
		}
		r.watch.lap(TimedStep{Kind: StepPrepare, Task: t.Name, Cached: r.rep.CurriculaBuilt+r.rep.IndexesBuilt == built})
		tasks = append(tasks, pt)
	}
	return tasks, nil
}

// prepareTask builds (or finds) the task's curriculum and its leakage report and, when the suite
// retrieves, its index and recall@k.
func (r *runner) prepareTask(t Task) (*preparedTask, error) {
	pt := &preparedTask{Task: t}
	if err := r.curriculum(pt); err != nil {
		return nil, err
	}
	pt.leakage = leakage.Analyze(pt.cur, leakage.DefaultThreshold)
	if !r.s.needsRAG() {
		return pt, nil
	}
	if err := r.index(pt); err != nil {
		return nil, err
	}
	if err := r.recall(pt); err != nil {
		return nil, err
	}
	return pt, nil
}

// curriculum finds the task's curriculum folder (building a synthetic or Perpetual one under
// Work/curricula if missing), reads it and hashes it.
func (r *runner) curriculum(pt *preparedTask) error {
	t := pt.Task
	dir, err := r.curriculumDir(t)
	if err != nil {
		return err
	}
	pt.dir = dir
	c, err := curriculum.Read(pt.dir)
	if err != nil {
		return fmt.Errorf("task %s: %w", t.Name, err)
	}
	if len(c.Test) == 0 {
		return fmt.Errorf("task %s: curriculum %s has no test questions", t.Name, pt.dir)
	}
	pt.cur = c
	// The manifest records the SHA-256 of every file (checked by Read), so it identifies the curriculum.
	h, err := r.hasher.file(filepath.Join(pt.dir, "manifest.json"))
	if err != nil {
		return fmt.Errorf("task %s: %w", t.Name, err)
	}
	pt.hash = h
	return nil
}

// curriculumDir is the task's curriculum folder: its own folder, or one built from its synthetic
// settings or its Perpetual files (keyed by them) unless already built.
func (r *runner) curriculumDir(t Task) (string, error) {
	curricula := filepath.Join(r.opt.Work, "curricula")
	switch {
	case t.Synthetic != nil:
		src := *t.Synthetic
		dir := filepath.Join(curricula, t.Name+"-"+keyOf("synthetic", src)[:16])
		err := buildDir(dir, func(tmp string) error {
			c, err := synthetic.Build(src.Kind, synthetic.Options{Seed: src.Seed, Chunks: src.Chunks, FactsPerChunk: src.FactsPerChunk,
				DocVariants: src.DocVariants, Paraphrases: src.Paraphrases})
			if err != nil {
				return err
			}
			r.rep.CurriculaBuilt++
			return curriculum.Write(tmp, c)
		})
		if err != nil {
			return "", fmt.Errorf("task %s: synthetic curriculum: %w", t.Name, err)
		}
		return dir, nil
	case t.Perpetual != "":
		var parts []string
		for _, f := range []string{"train.json", "test.json"} {
			h, err := r.hasher.file(filepath.Join(t.Perpetual, f))
			if err != nil {
				return "", fmt.Errorf("task %s: Perpetual data %s: %w", t.Name, t.Perpetual, err)
			}
			parts = append(parts, h)
		}
		dir := filepath.Join(curricula, t.Name+"-"+keyOf("perpetual", parts)[:16])
		err := buildDir(dir, func(tmp string) error {
			c, err := perpetualfmt.ReadDir(t.Perpetual, t.Name)
			if err != nil {
				return err
			}
			r.rep.CurriculaBuilt++
			return curriculum.Write(tmp, c)
		})
		if err != nil {
			return "", fmt.Errorf("task %s: %w", t.Name, err)
		}
		return dir, nil
	}
	return t.Curriculum, nil
}

// index builds the task's retrieval index under Work/indexes unless it exists, keyed by the
// curriculum, the retriever and, for dense and hybrid retrieval, the encoder's files.
func (r *runner) index(pt *preparedTask) error {
	t := pt.Task
	encoderHash := ""
	if t.RAG.Retriever != rag.KindBM25 {
		// The encoder's files are part of the index's identity: a changed encoder rebuilds the
		// index and re-scores the RAG cells instead of failing on the stale index.
		var err error
		if encoderHash, err = r.hasher.Hash(t.RAG.Embedder); err != nil {
			return fmt.Errorf("task %s: rag embedder %s: %w", t.Name, t.RAG.Embedder, err)
		}
	}
	pt.indexKey = keyOf("index", pt.hash, t.RAG.Retriever, t.RAG.Embedder, encoderHash)
	pt.index = filepath.Join(r.opt.Work, "indexes", t.Name+"-"+pt.indexKey[:16])
	if _, err := os.Stat(pt.index); err == nil {
		return nil
	}
	idx, err := rag.Build(pt.cur.Chunks, rag.Options{Kind: t.RAG.Retriever, Dense: rag.DenseOptions{ModelDir: t.RAG.Embedder, Load: r.opt.Embedders}})
	if err != nil {
		return fmt.Errorf("task %s: rag index: %w", t.Name, err)
	}
	if err := idx.Save(pt.index); err != nil {
		return fmt.Errorf("task %s: rag index: %w", t.Name, err)
	}
	r.rep.IndexesBuilt++
	return nil
}

// recall measures the index's recall@k on the task's questions, or reads it back from beside the
// index.
func (r *runner) recall(pt *preparedTask) error {
	t := pt.Task
	recallPath := pt.index + ".recall.json"
	var rec rag.RecallReport
	if err := readJSON(recallPath, &rec); err != nil {
		idx, err := rag.Open(pt.index, r.opt.Embedders)
		if err != nil {
			return fmt.Errorf("task %s: %w", t.Name, err)
		}
		known := map[string]bool{}
		for _, ch := range idx.Chunks() {
			known[ch.ID] = true
		}
		rec, err = rag.Recall(idx, pt.cur.Test, func(id string) bool { return known[id] }, nil)
		if err != nil {
			return fmt.Errorf("task %s: recall: %w", t.Name, err)
		}
		if err := writeJSON(recallPath, rec); err != nil {
			return err
		}
	}
	pt.recall = &rec
	return nil
}

// prepareModels resolves every model of the suite to a folder (zoo models through Options.Zoo)
// and hashes its files, each a timed step.
func (r *runner) prepareModels() ([]*preparedModel, error) {
	var models []*preparedModel
	zooDir := filepath.Join(r.opt.Work, "zoo")
	for _, m := range r.s.Models {
		// A Zoo does not say whether it built the model, so the step is cached when the folder
		// it resolves to was there before (a plain model folder always is).
		before := folderNames(zooDir)
		dir, err := ResolveModel(m.Path, zooDir, r.opt.Zoo)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
		hash, err := r.hasher.Hash(dir)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
		code, err := lm.CodeVersionOf(dir)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
		cached := filepath.Dir(dir) != zooDir || before[filepath.Base(dir)]
		r.watch.lap(TimedStep{Kind: StepZoo, Model: m.Name, Cached: cached})
		models = append(models, &preparedModel{Model: m, dir: dir, hash: hash, code: code})
	}
	return models, nil
}

// folderNames is the set of names in dir (empty when dir is missing).
func folderNames(dir string) map[string]bool {
	entries, _ := os.ReadDir(dir) // a missing zoo folder has nothing in it yet
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}
