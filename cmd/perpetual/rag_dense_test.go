package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
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
	for _, kind := range []string{"dense", "hybrid"} {
		idx := filepath.Join(t.TempDir(), kind)
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
	// Dense without --model is a clear error.
	if out, err := runCLI(t, "rag", "index", "--retriever", "dense", "--model", "", "--curriculum", cur, "--out", filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("dense without --model: %v\n%s", err, out)
	}
}
