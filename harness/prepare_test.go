package harness

import (
	"context"
	"path/filepath"
	"testing"

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
