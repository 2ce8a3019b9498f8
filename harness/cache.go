package harness

import (
	"fmt"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/evaluation"
)

// cellFile is the file in a cell's cache folder (Work/cells/KEY) whose presence, with the cell's
// key and every formulation, marks the cell done.
const cellFile = "cell.json"

// cellKeyOf is a planned cell's cache key: its task, model, prompt template, condition and seed,
// the evaluated model's and the curriculum's hashes, the index and k, the formulations and eval
// settings, the base cell's key, the model's code version, and what cellKey adds.
func (r *runner) cellKeyOf(c cellPlan, modelDir, modelHash string, base *CellRecord) (string, error) {
	baseKey := ""
	if base != nil {
		baseKey = base.Key
	}
	_, indexKey, k := c.retrieval()
	enc, err := r.encoding(modelDir)
	if err != nil {
		return "", fmt.Errorf("task %s, model %s, %s: %w", c.task.Name, c.model.Name, c.cond, err)
	}
	parts := []any{"cell", c.task.Name, c.model.Name, c.model.ChatTemplate, c.cond, c.seed, modelHash, c.task.hash, indexKey, k, r.s.Formulations, r.s.Eval, baseKey,
		"code", c.model.code}
	gen, err := generationParts(r.s.Formulations)
	if err != nil {
		return "", err
	}
	return cellKey(append(parts, gen...), r.s.taskOptions(c.task.Task), enc), nil
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

// encodingInfo is an evalEncoding result.
type encodingInfo struct {
	enc     evaluation.Encoding
	changed bool
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

// cachedCell reads a cell back from its folder when its cell.json carries the key and every
// formulation of the suite (one without is evaluated again rather than reported with a hole).
func (r *runner) cachedCell(c cellPlan, dir, key, modelDir string) (*CellRecord, bool) {
	var rec CellRecord
	if err := readJSON(filepath.Join(dir, cellFile), &rec); err != nil || rec.Key != key || !rec.hasFormulations(r.s.Formulations) {
		return nil, false
	}
	// The key pins the contents; the folders may have moved (e.g. a renamed results folder).
	rec.dir, rec.ModelDir = dir, modelDir
	if usesRAG(c.cond) {
		rec.Index = c.task.index
	}
	r.rep.CellsCached++
	return &rec, true
}

// hasFormulations reports whether a cell record holds every formulation.
func (rec *CellRecord) hasFormulations(forms []string) bool {
	for _, f := range forms {
		if rec.Formulations[f] == nil {
			return false
		}
	}
	return true
}
