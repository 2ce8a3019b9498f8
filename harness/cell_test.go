package harness

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// The recall formulation in cells: adding it to a suite evaluates the cells again (the key names
// the formulations and the recall task), a cached cell.json that lacks it is evaluated again
// rather than reported with a hole, and EvaluateOne reproduces a logged answer.
func TestRecallInCells(t *testing.T) {
	dir := t.TempDir()
	const suite = `
name: recall
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {k: 1}
models:
  - name: gemma-tiny
    path: zoo:gemma-tiny
    prompt_format: gemma
conditions: [base, rag]
formulations: [letters]
eval: {batch_size: 16, bootstrap: 100, limit: 3}
`
	opt := Options{Out: filepath.Join(dir, "results"), Work: filepath.Join(dir, "work"), Zoo: zootest.Random{}}
	run := cellRunner(t, dir, "recall.yaml", opt, 2)
	run(suite, 2)
	withRecall := strings.Replace(suite, "formulations: [letters]", "formulations: [letters, recall]", 1)
	rep := run(withRecall, 2)
	rec, err := rep.Results.Record("products", "gemma-tiny", results.RAG)
	if err != nil {
		t.Fatal(err)
	}
	fr := rec.Formulations[evaluation.Recall]
	if fr == nil || fr.VsBase == nil || fr.ContainsVsBase == nil || fr.Extras.Overall.Contains == nil || fr.Extras.Overall.N != 3 {
		t.Fatalf("recall record %+v", fr)
	}
	logged, err := Samples(opt.Out, rec, evaluation.Recall)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EvaluateOne(mustLoadResults(t, opt.Out), "products", "gemma-tiny", results.RAG, evaluation.Recall, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range again.Samples {
		if s.Prompt != logged[i].Prompt || s.Recall.Generated != logged[i].Recall.Generated || !slices.Equal(s.Recall.TokenIDs, logged[i].Recall.TokenIDs) {
			t.Errorf("EvaluateOne answer %d: %+v, logged %+v", i, s.Recall, logged[i].Recall)
		}
	}
	run(withRecall, 0)

	// A cell.json with the right key but no recall record, as a cell written without it would
	// look: that cell is evaluated again, its generations read back from its request cache.
	done := filepath.Join(rec.dir, "cell.json")
	var stale CellRecord
	if err := readJSON(done, &stale); err != nil {
		t.Fatal(err)
	}
	delete(stale.Formulations, evaluation.Recall)
	if err := writeJSON(done, &stale); err != nil {
		t.Fatal(err)
	}
	rep = run(withRecall, 1)
	if rec, _ = rep.Results.Record("products", "gemma-tiny", results.RAG); rec.Formulations[evaluation.Recall] == nil ||
		rec.Formulations[evaluation.Recall].Extras.CachedRequests != 3 {
		t.Errorf("re-evaluated cell: %+v", rec.Formulations[evaluation.Recall])
	}

	// Only a formulation that generates adds to the key (cells of letters and cloze keep theirs).
	if parts, err := generationParts([]string{evaluation.Letters, evaluation.Cloze}); err != nil || len(parts) != 0 {
		t.Errorf("letters and cloze add %v (%v) to the cell key", parts, err)
	}
	if parts, err := generationParts([]string{evaluation.Letters, evaluation.Recall}); err != nil || len(parts) != 2 {
		t.Errorf("recall adds %v (%v) to the cell key", parts, err)
	}
}
