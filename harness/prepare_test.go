package harness

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// perpetualData is the study's data, beside the repository (../shared from the repository root).
var perpetualData = filepath.Join("..", "..", "shared", "datasets", "perpetual")

func TestPerpetualTask(t *testing.T) {
	testenv.File(t, "the Perpetual reference data", filepath.Join(perpetualData, "products", "test.json"))
	dir := t.TempDir()
	suite := `
name: perpetual-mini
tasks:
  - name: products
    perpetual: ${DATA}/products
models:
  - name: tiny
    path: zoo:gemma-tiny
    prompt_format: alpaca
conditions: [base]
formulations: [letters]
eval: {limit: 4}
`
	abs, _ := filepath.Abs(perpetualData)
	s, err := Parse([]byte(suite), "perpetual-mini", dir, map[string]string{"DATA": abs})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), s, Options{Out: filepath.Join(dir, "out"), Zoo: zootest.Random{}})
	if err != nil {
		t.Fatal(err)
	}
	info := rep.Results.Tasks[0]
	// The known properties of this data show up in the report: 2,391 questions, B the most
	// frequent answer (always-B about 0.40), test questions found among the flashcards.
	if info.Counts.Test != 2391 || info.Baselines.Always["B"] < 0.39 || info.Leakage.All.Near == 0 || rep.Results.Cells[0].N != 4 {
		t.Errorf("products: counts %+v, always-B %.3f, leakage %+v, cell %+v", info.Counts, info.Baselines.Always["B"], info.Leakage.All, rep.Results.Cells[0])
	}
}

// A synthetic task's paraphrases and doc_variants reach its curriculum: more training items than
// without them, the same test, and a folder of their own.
func TestSyntheticVariedForms(t *testing.T) {
	count := func(extra string) (train, test int, dir string) {
		t.Helper()
		yaml := "name: x\ntasks:\n  - name: t\n    synthetic: {kind: products, seed: 1, chunks: 4, facts_per_chunk: 2" + extra +
			"}\nmodels:\n  - name: m\n    path: zoo:gemma-tiny\n"
		work := t.TempDir()
		s, err := Parse([]byte(yaml), "s.yaml", work, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := &runner{s: s, opt: Options{Work: work}, rep: &Report{}}
		dir, err = r.curriculumDir(s.Tasks[0])
		if err != nil {
			t.Fatal(err)
		}
		c, err := curriculum.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(c.Train), len(c.Test), filepath.Base(dir)
	}
	plainTrain, plainTest, plainDir := count("")
	for _, extra := range []string{", paraphrases: 2", ", doc_variants: 2"} {
		train, test, dir := count(extra)
		if train <= plainTrain || test != plainTest || dir == plainDir {
			t.Errorf("%q: %d training items (plain %d), %d test (plain %d), folder %s (plain %s)", extra, train, plainTrain, test, plainTest, dir, plainDir)
		}
	}
}
