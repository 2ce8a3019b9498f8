package harness

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/bert"
	"github.com/perpetual-ml/perpetual/models/bert/berttest"
	"github.com/perpetual-ml/perpetual/rag"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

const denseSuite = `
name: dense
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {retriever: hybrid, k: 2, embedder: "${ENCODER}"}
models:
  - name: other
    path: ${OTHER_MODEL}
conditions: [base, rag]
formulations: [letters]
eval: {batch_size: 16, bootstrap: 100, limit: 6}
`

// A suite can retrieve with the BERT encoder (hybrid: BM25 and dense fused); the index is keyed
// by the encoder's files, so changing the encoder rebuilds the index and re-scores only the RAG
// cell.
func TestRunWithHybridRetriever(t *testing.T) {
	load := func(dir string) (rag.Embedder, error) { return bert.Load(dir) }
	dir := t.TempDir()
	other := filepath.Join(dir, "other-model")
	if err := zoo.RandomModel(other, zootest.TinyGemma, 7); err != nil {
		t.Fatal(err)
	}
	encoder := berttest.CopyTiny(t)
	s, err := Parse([]byte(denseSuite), "dense.yaml", dir, map[string]string{"OTHER_MODEL": other, "ENCODER": encoder})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "results")
	rep, err := Run(context.Background(), s, Options{Out: out, Zoo: zootest.Random{}, Embedders: load})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellsEvaluated != 2 || rep.IndexesBuilt != 1 {
		t.Fatalf("first run: %+v", rep)
	}
	rec, err := rep.Results.Record("products", "other", "rag")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := rag.ReadMeta(rec.Index)
	if err != nil || meta.Kind != rag.KindHybrid || meta.Dense == nil || len(meta.Dense.EncoderHash) != 64 {
		t.Fatalf("index meta %+v, %v", meta, err)
	}
	samples, err := Samples(out, rec, evaluation.Letters)
	if err != nil || len(samples) != 6 {
		t.Fatalf("samples: %v, %d", err, len(samples))
	}
	for _, smp := range samples {
		if len(smp.Retrieved) != 2 {
			t.Fatalf("sample retrieved %v, want 2 chunk ids", smp.Retrieved)
		}
	}

	// A different encoder (one weight changed) rebuilds the index; the base cell stays cached.
	berttest.PerturbWeight(t, encoder)
	rep, err = Run(context.Background(), s, Options{Out: out, Zoo: zootest.Random{}, Embedders: load})
	if err != nil {
		t.Fatal(err)
	}
	if rep.IndexesBuilt != 1 || rep.CellsEvaluated != 1 || rep.CellsCached != 1 {
		t.Fatalf("after changing the encoder: %+v", rep)
	}
}
