package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/evaluation"
)

// TestRagDenseAndHybridCommands runs index, query and recall with the tiny BERT fixture.
func TestRagDenseAndHybridCommands(t *testing.T) {
	model := filepath.Join("..", "..", "models", "bert", "testdata", "tiny")
	cur := filepath.Join(t.TempDir(), "cur")
	if out, err := runCLI(t, "curriculum", "build", "--source", "synthetic", "--task", "products", "--chunks", "6", "--quiet", "--out", cur); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	c, err := curriculum.Read(cur)
	if err != nil {
		t.Fatal(err)
	}
	// Flags persist across Execute calls in one process: put the defaults back afterwards.
	t.Cleanup(func() {
		runCLI(t, "rag", "index", "--retriever", "bm25", "--model", "", "--curriculum", filepath.Join(t.TempDir(), "none"), "--out", filepath.Join(t.TempDir(), "none"))
	})
	indexes := map[string]string{}
	for _, kind := range []string{"dense", "hybrid"} {
		idx := filepath.Join(t.TempDir(), kind)
		indexes[kind] = idx
		out, err := runCLI(t, "rag", "index", "--retriever", kind, "--model", model, "--curriculum", cur, "--out", idx)
		if err != nil || !strings.Contains(out, "indexed 6 chunks ("+kind+")") {
			t.Fatalf("%s index: %v\n%s", kind, err, out)
		}
		out, err = runCLI(t, "rag", "query", "--index", idx, "--k", "2", c.Chunks[0].Text)
		if err != nil {
			t.Fatalf("%s query: %v\n%s", kind, err, out)
		}
		var hits []struct{ ChunkID string }
		if err := json.Unmarshal([]byte(out), &hits); err != nil || len(hits) != 2 {
			t.Fatalf("%s query returned %s (err %v), want 2 hits", kind, out, err)
		}
		out, err = runCLI(t, "rag", "recall", "--index", idx, "--curriculum", cur)
		if err != nil {
			t.Fatalf("%s recall: %v\n%s", kind, err, out)
		}
		var report struct {
			Questions int
			Recall    []float64
		}
		if err := json.Unmarshal([]byte(out), &report); err != nil || report.Questions != len(c.Test) || len(report.Recall) == 0 {
			t.Fatalf("%s recall report %s (err %v)", kind, out, err)
		}
	}
	// eval --rag reads a dense index (and loads its encoder) like a BM25 one.
	// The fixture's 64-token window would cut every passage; Gemma's rotary positions let the
	// same weights read longer prompts.
	lmDir := tinyModelDir(t)
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(lmDir, "config.json"))
	if err != nil || json.Unmarshal(raw, &cfg) != nil {
		t.Fatalf("tiny model config: %v", err)
	}
	cfg["max_position_embeddings"] = 2048
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(lmDir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	evalOut := filepath.Join(t.TempDir(), "eval")
	out, err := runCLI(t, "eval", "--model", lmDir, "--test", cur, "--rag", indexes["dense"], "--k", "2",
		"--formulation", "letters", "--limit", "5", "--quiet", "--out", evalOut)
	if err != nil || !strings.Contains(out, "recall@k") {
		t.Fatalf("eval --rag with a dense index: %v\n%s", err, out)
	}
	samples, err := evaluation.ReadSamples(filepath.Join(evalOut, evaluation.SamplesFile("perpetual_letters")))
	if err != nil || len(samples) != 5 {
		t.Fatalf("samples: %v, %d", err, len(samples))
	}
	for _, smp := range samples {
		if len(smp.Retrieved) != 2 || !strings.Contains(smp.Prompt, smp.Doc.Question) {
			t.Fatalf("dense RAG sample: retrieved %v, prompt %q\n%s", smp.Retrieved, smp.Prompt, out)
		}
	}
	// Dense without --model is a clear error.
	if out, err := runCLI(t, "rag", "index", "--retriever", "dense", "--model", "", "--curriculum", cur, "--out", filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("dense without --model: %v\n%s", err, out)
	}
}
